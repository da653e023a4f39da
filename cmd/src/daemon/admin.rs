//! Volume, bucket and maintenance routes: what the CLI's embedded
//! commands do, for `--api`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hydra_bucket::{BucketConfig, BucketName, BucketUpdate, CreateOptions};
use hydra_eventlog::{
    BucketCollected, Imported, ReindexReport, ScavengeReport, VolumeInfo, VolumeVerified,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::api::Binary;
use super::app::{Shared, blocking, committing};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{JsonBody, Path, Query};
use crate::access::TokenInfo;

/// The event log's volume: backend, peer id, blocks, bytes.
#[utoipa::path(get, path = "/volume",
    responses((status = 200, description = "The volume", body = VolumeInfo)))]
pub async fn volume(State(app): State<Shared>) -> ApiResult<Json<VolumeInfo>> {
    let a = app.clone();
    // The event log lives on the first volume.
    Ok(Json(
        blocking(&app, move || Ok(a.log.volume_info()?)).await?,
    ))
}

/// Re-hashes every block of every volume, and checks every stored event
/// of the event log against its hash.
#[utoipa::path(post, path = "/volume/verify",
    responses((status = 200, description = "What each volume holds that is corrupt (none when `corrupt` lists are empty)", body = Vec<VolumeVerified>)))]
pub async fn verify(State(app): State<Shared>) -> ApiResult<Json<Vec<VolumeVerified>>> {
    let a = app.clone();
    let reports = blocking(&app, move || {
        let mut all = Vec::new();
        for (i, (id, store)) in a.stores.iter().enumerate() {
            all.push(VolumeVerified {
                volume: id.clone(),
                report: store.verify(|_| {})?,
                // The event log lives on the first store.
                events: if i == 0 {
                    Some(a.log.verify(|_| {})?)
                } else {
                    None
                },
            });
        }
        Ok(all)
    })
    .await?;
    Ok(Json(reports))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBucket {
    /// zstd level, when blocks are compressed.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 22)]
    zstd_level: Option<i32>,
    /// Volume id (default: the event log's).
    #[serde(default)]
    volume: Option<String>,
}

/// Creates a plain or compressed bucket. Encrypted buckets are declared
/// in the config, where their key file is named.
#[utoipa::path(put, path = "/buckets/{b}", params(("b" = BucketName, Path)),
    request_body = CreateBucket,
    responses(
        (status = 201, description = "Created", body = BucketConfig),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 404, description = "No such volume", body = ErrorBody),
        (status = 409, description = "It exists", body = ErrorBody),
    ))]
pub async fn create_bucket(
    State(app): State<Shared>,
    Path(b): Path<String>,
    JsonBody(body): JsonBody<CreateBucket>,
) -> ApiResult<Response> {
    let name: BucketName = b
        .parse()
        .map_err(|e: hydra_bucket::BucketError| ApiError::bad_request(e.to_string()))?;
    let a = app.clone();
    let c = committing(move || {
        let store = match &body.volume {
            Some(v) => {
                &a.stores
                    .iter()
                    .find(|(id, _)| id == v)
                    .ok_or_else(|| ApiError::not_found(format!("volume {v} does not exist")))?
                    .1
            }
            None => &a.stores[0].1,
        };
        Ok(store.create_bucket(
            &name,
            CreateOptions {
                zstd_level: body.zstd_level,
                key: None,
            },
        )?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(c)).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBucket {
    /// Must be above the config's version (default: the next one).
    version: Option<u64>,
    /// The bucket's zstd level, which cannot change (stored blocks depend
    /// on it): a check that it is what the client expects.
    #[schema(minimum = 1, maximum = 22)]
    zstd_level: Option<i32>,
}

/// A new version of a bucket's config.
#[utoipa::path(patch, path = "/buckets/{b}", params(("b" = BucketName, Path)),
    request_body = UpdateBucket,
    responses(
        (status = 200, description = "The new config", body = BucketConfig),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 404, description = "No such bucket", body = ErrorBody),
        (status = 409, description = "Not a newer version", body = ErrorBody),
    ))]
pub async fn update_bucket(
    State(app): State<Shared>,
    Path(b): Path<String>,
    JsonBody(body): JsonBody<UpdateBucket>,
) -> ApiResult<Json<BucketConfig>> {
    let a = app.clone();
    let c = committing(move || {
        let bucket = a.bucket(&b)?;
        let store = a.store_of(bucket.name())?;
        Ok(store.update_bucket(
            bucket.name(),
            BucketUpdate {
                version: body.version.unwrap_or(bucket.config().version + 1),
                zstd_level: body.zstd_level,
                policies: None,
            },
        )?)
    })
    .await?;
    Ok(Json(c))
}

/// What removing a bucket freed.
#[derive(Serialize, ToSchema)]
pub struct BucketRemoved {
    /// Blocks deleted.
    blocks: u64,
}

/// Removes a bucket and all its blocks.
#[utoipa::path(delete, path = "/buckets/{b}", params(("b" = BucketName, Path)),
    responses(
        (status = 200, description = "Removed", body = BucketRemoved),
        (status = 404, description = "No such bucket", body = ErrorBody),
        (status = 409, description = "Its streams are replicated or it is the default bucket", body = ErrorBody),
    ))]
pub async fn delete_bucket(
    State(app): State<Shared>,
    Path(b): Path<String>,
) -> ApiResult<Json<BucketRemoved>> {
    let a = app.clone();
    let n = committing(move || {
        let bucket = a.bucket(&b)?;
        let store = a.store_of(bucket.name())?;
        // Streams live on the event log's volume, the first.
        if std::ptr::eq(store, &a.stores[0].1) {
            Ok(a.log.remove_bucket(bucket.name())?)
        } else {
            Ok(store.remove_bucket(bucket.name())?)
        }
    })
    .await?;
    Ok(Json(BucketRemoved { blocks: n }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GcQuery {
    /// Collect only this bucket (default: every bucket the daemon can read).
    #[param(value_type = Option<BucketName>)]
    bucket: Option<String>,
}

/// Collects garbage: blocks no root reaches.
#[utoipa::path(post, path = "/gc", params(GcQuery),
    responses(
        (status = 200, description = "What each bucket freed", body = Vec<BucketCollected>),
        (status = 404, description = "No such bucket", body = ErrorBody),
    ))]
pub async fn gc(
    State(app): State<Shared>,
    Query(q): Query<GcQuery>,
) -> ApiResult<Json<Vec<BucketCollected>>> {
    let a = app.clone();
    let reports = committing(move || {
        let named = q.bucket.is_some();
        let names: Vec<String> = match q.bucket {
            Some(b) => vec![b],
            None => {
                let mut all = Vec::new();
                for (_, s) in &a.stores {
                    all.extend(s.buckets()?.into_iter().map(|c| c.id.to_string()));
                }
                all
            }
        };
        let mut out = Vec::new();
        for n in names {
            let bucket = a.bucket(&n)?;
            // As the embedded store does (`Admin::gc`): a bucket named is
            // collected as it can be (a replica's blind); among all, those
            // the daemon cannot read are passed over.
            if !named && !bucket.is_readable() {
                continue;
            }
            out.push(BucketCollected {
                report: bucket.gc()?,
                bucket: n,
            });
        }
        Ok(out)
    })
    .await?;
    Ok(Json(reports))
}

/// Removes the events no read can return any more (deleted, truncated,
/// expired), and their blocks.
#[utoipa::path(post, path = "/scavenge",
    responses((status = 200, description = "What was removed", body = ScavengeReport)))]
pub async fn scavenge(State(app): State<Shared>) -> ApiResult<Json<ScavengeReport>> {
    let a = app.clone();
    Ok(Json(committing(move || Ok(a.log.scavenge()?)).await?))
}

/// Rebuilds the event log's indexes from its blocks.
#[utoipa::path(post, path = "/reindex",
    responses((status = 200, description = "What was rebuilt", body = ReindexReport)))]
pub async fn reindex(State(app): State<Shared>) -> ApiResult<Json<ReindexReport>> {
    let a = app.clone();
    Ok(Json(committing(move || Ok(a.log.reindex()?)).await?))
}

/// What an export holds: give one of `stream`, `bucket` or `all`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Streams to export (repeatable).
    #[param(value_type = Option<Vec<hydra_eventlog::StreamId>>, explode = true, style = Form)]
    stream: Vec<String>,
    /// A bucket to export: its signed manifest, objects and blocks.
    #[param(value_type = Option<BucketName>)]
    bucket: Option<String>,
    /// Everything: every bucket and stream (a backup; needs admin).
    #[param(value_type = Option<bool>)]
    all: bool,
}

impl ExportQuery {
    /// Reads a query string whose `stream` may repeat (which axum's
    /// `Query` cannot).
    fn parse(q: Option<&str>) -> ApiResult<ExportQuery> {
        let all = match query_values(q, "all").pop().as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "all={other:?}: use true or false"
                )));
            }
        };
        Ok(ExportQuery {
            stream: query_values(q, "stream"),
            bucket: query_values(q, "bucket").pop(),
            all,
        })
    }
}

/// Streams (`?stream=S`, repeatable), a bucket (`?bucket=B`) or
/// everything (`?all=true`, a backup) as a CARv1 file, streamed as it is
/// written.
#[utoipa::path(get, path = "/export", params(ExportQuery),
    responses(
        (status = 200, description = "The CARv1 file", content_type = "application/vnd.ipld.car", body = Binary),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 404, description = "No such stream or bucket", body = ErrorBody),
    ))]
pub async fn export(
    State(app): State<Shared>,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> ApiResult<Response> {
    let q = ExportQuery::parse(q.as_deref())?;
    let streams = q
        .stream
        .into_iter()
        .map(|s| hydra_eventlog::StreamId::new(s).map_err(|e| ApiError::bad_request(e.to_string())))
        .collect::<ApiResult<Vec<_>>>()?;
    let bucket = q.bucket;
    let all = q.all;
    let a = app.clone();
    // What can be refused with a status is checked before the body starts.
    let body = match bucket {
        _ if all && (bucket.is_some() || !streams.is_empty()) => {
            return Err(ApiError::bad_request(
                "?all=true exports everything: give no ?stream= or ?bucket= with it",
            ));
        }
        Some(_) if !streams.is_empty() => {
            return Err(ApiError::bad_request(
                "export streams and a bucket to separate files",
            ));
        }
        None if all => {
            let log = app.log.clone();
            super::blobs::streamed(move |w| {
                log.export_all(w).map(|_| ()).map_err(|e| e.to_string())
            })
        }
        Some(b) => {
            let bucket = blocking(&app, move || a.bucket(&b)).await?;
            let log = app.log.clone();
            super::blobs::streamed(move |w| {
                log.export_bucket(&bucket, w)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
        }
        None if streams.is_empty() => {
            return Err(ApiError::bad_request(
                "give at least one ?stream=, a ?bucket=, or ?all=true",
            ));
        }
        None => {
            let s = streams.clone();
            blocking(&app, move || {
                for stream in &s {
                    a.log.head(stream)?;
                }
                Ok(())
            })
            .await?;
            let log = app.log.clone();
            super::blobs::streamed(move |w| {
                log.export(&streams, w)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
        }
    };
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/vnd.ipld.car")],
        body,
    )
        .into_response())
}

/// The values of `key` in a query string (repeated keys allowed).
fn query_values(q: Option<&str>, key: &str) -> Vec<String> {
    form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// Whom an import trusts.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// Trust only these signers (peer ids or hex public keys; repeatable).
    #[param(value_type = Option<Vec<String>>, explode = true, style = Form)]
    writer: Vec<String>,
}

/// Imports a CARv1 file from an export (streams, a bucket, or a whole
/// backup): verified completely before anything is applied.
#[utoipa::path(post, path = "/import", params(ImportQuery),
    request_body(description = "A CARv1 file", content = Binary, content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "Imported", body = Imported),
        (status = 400, description = "Not a valid export, or a signer not trusted", body = ErrorBody),
        (status = 409, description = "It conflicts with what is here", body = ErrorBody),
    ))]
pub async fn import(
    State(app): State<Shared>,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
    body: axum::body::Body,
) -> ApiResult<Response> {
    use futures_util::StreamExt;
    let q = ImportQuery {
        writer: query_values(q.as_deref(), "writer"),
    };
    let writers = crate::cli::transfer::writers(&q.writer)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    // The body may be any size: spooled to a file (import reads it twice),
    // removed when dropped, whichever way this returns.
    let file = tempfile::NamedTempFile::new().map_err(|e| ApiError::internal(e.to_string()))?;
    let mut f = tokio::fs::File::from_std(
        file.reopen()
            .map_err(|e| ApiError::internal(e.to_string()))?,
    );
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(e.to_string()))?;
        tokio::io::AsyncWriteExt::write_all(&mut f, &chunk)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
    }
    tokio::io::AsyncWriteExt::flush(&mut f)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    drop(f);
    let a = app.clone();
    let r = committing(move || {
        let bucket = hydra_eventlog::bucket_of(file.path())?;
        let Some(name) = bucket else {
            return Ok(Imported::Streams(a.log.import(file.path(), &writers)?));
        };
        let f = std::fs::File::open(file.path()).map_err(|e| ApiError::internal(e.to_string()))?;
        // Into the store that holds the bucket, or the event log's.
        let store = name
            .parse()
            .ok()
            .and_then(|n| a.store_of(&n).ok())
            .unwrap_or(&a.stores[0].1);
        Ok(Imported::Bucket(store.import(
            std::io::BufReader::new(f),
            &writers,
            a.keys.get(&name),
        )?))
    })
    .await?;
    Ok(Json(r).into_response())
}

/// API tokens: names, scopes, creation times (never secrets).
#[utoipa::path(get, path = "/tokens",
    responses((status = 200, description = "The tokens", body = Vec<TokenInfo>)))]
pub async fn list_tokens(State(app): State<Shared>) -> Json<Vec<TokenInfo>> {
    Json(app.gate.list().iter().map(|t| t.info()).collect())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    name: String,
    /// `read:PREFIX`, `write:PREFIX`, `delete:PREFIX`, `bucket-read:B`,
    /// `bucket-write:B` or `admin` (a prefix or bucket may be `*`).
    #[schema(min_items = 1, value_type = Vec<Scope>)]
    scopes: Vec<String>,
}

/// A token's scope, as a pattern.
pub struct Scope;

impl utoipa::PartialSchema for Scope {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .pattern(Some(
                r"^(admin|(read|write|delete|bucket-read|bucket-write):[^\u0000-\u001f\u007f-\u009f]+)$",
            ))
            .into()
    }
}

impl ToSchema for Scope {}

/// Creates a token: the answer holds its secret, which nothing keeps.
#[utoipa::path(post, path = "/tokens", request_body = NewToken,
    responses(
        (status = 201, description = "Created, with its secret", body = TokenInfo),
        (status = 400, description = "Bad name or scope", body = ErrorBody),
        (status = 409, description = "A token of that name exists", body = ErrorBody),
    ))]
pub async fn create_token(
    State(app): State<Shared>,
    JsonBody(t): JsonBody<NewToken>,
) -> ApiResult<Response> {
    let a = app.clone();
    let (token, secret) = committing(move || Ok(a.gate.create(&t.name, &t.scopes)?)).await?;
    let info = crate::access::TokenInfo {
        secret: Some(secret),
        ..token.info()
    };
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

/// Revokes a token: its requests are refused and its subscriptions end.
#[utoipa::path(delete, path = "/tokens/{name}", params(("name" = String, Path)),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such token", body = ErrorBody),
    ))]
pub async fn revoke_token(
    State(app): State<Shared>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let a = app.clone();
    committing(move || Ok(a.gate.revoke(&name)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}
