//! Volume, bucket and maintenance routes: what the CLI's embedded
//! commands do, for `--api`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hydra_bucket::{BucketName, BucketUpdate, CreateOptions};
use serde::Deserialize;
use serde_json::json;

use super::app::{Shared, blocking, committing};
use super::error::{ApiError, ApiResult};

/// `GET /volume`: the event log's volume.
pub async fn volume(State(app): State<Shared>) -> ApiResult<Response> {
    let a = app.clone();
    let v = blocking(&app, move || {
        let (_, store) = &a.stores[0];
        let stats = store.block_stats()?;
        Ok(json!({
            "backend": store.volume().backend().to_string(),
            "peer_id": a.log.identity().peer_id().to_string(),
            "buckets": store.buckets()?.len(),
            "blocks": stats.blocks,
            "stored_bytes": stats.stored_bytes,
        }))
    })
    .await?;
    Ok(Json(v).into_response())
}

/// `POST /volume/verify`: re-hash every block of every volume, and check
/// every stored event of the event log against its hash.
pub async fn verify(State(app): State<Shared>) -> ApiResult<Response> {
    let a = app.clone();
    let reports = blocking(&app, move || {
        let mut all = Vec::new();
        for (i, (id, store)) in a.stores.iter().enumerate() {
            let mut v = json!({"volume": id, "report": store.verify(|_| {})?});
            // The event log lives on the first store.
            if i == 0 {
                v["events"] = json!(a.log.verify(|_| {})?);
            }
            all.push(v);
        }
        Ok(all)
    })
    .await?;
    Ok(Json(reports).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBucket {
    /// zstd level.
    #[serde(default)]
    zstd_level: Option<i32>,
    /// Volume id (default: the event log's).
    #[serde(default)]
    volume: Option<String>,
}

/// `PUT /buckets/{b}`: create a plain or compressed bucket. Encrypted
/// buckets are declared in the config, where their key file is named.
pub async fn create_bucket(
    State(app): State<Shared>,
    Path(b): Path<String>,
    Json(body): Json<CreateBucket>,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBucket {
    version: Option<u64>,
    zstd_level: Option<i32>,
}

/// `PATCH /buckets/{b}`: a new version of the config.
pub async fn update_bucket(
    State(app): State<Shared>,
    Path(b): Path<String>,
    Json(body): Json<UpdateBucket>,
) -> ApiResult<Response> {
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
    Ok(Json(c).into_response())
}

/// `DELETE /buckets/{b}`: the bucket and all its blocks.
pub async fn delete_bucket(
    State(app): State<Shared>,
    Path(b): Path<String>,
) -> ApiResult<Response> {
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
    Ok(Json(json!({"blocks": n})).into_response())
}

#[derive(Deserialize)]
pub struct GcQuery {
    bucket: Option<String>,
}

/// `POST /gc`: collect one bucket, or every bucket the daemon can read.
pub async fn gc(State(app): State<Shared>, Query(q): Query<GcQuery>) -> ApiResult<Response> {
    let a = app.clone();
    let reports = committing(move || {
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
            if bucket.is_encrypted() && !a.keys.contains_key(&n) {
                continue;
            }
            out.push(json!({"bucket": n, "report": bucket.gc()?}));
        }
        Ok(out)
    })
    .await?;
    Ok(Json(reports).into_response())
}

/// `POST /scavenge`.
pub async fn scavenge(State(app): State<Shared>) -> ApiResult<Response> {
    let a = app.clone();
    Ok(Json(committing(move || Ok(a.log.scavenge()?)).await?).into_response())
}

/// `POST /reindex`.
pub async fn reindex(State(app): State<Shared>) -> ApiResult<Response> {
    let a = app.clone();
    Ok(Json(committing(move || Ok(a.log.reindex()?)).await?).into_response())
}

/// `GET /export?stream=S&stream=T` or `?bucket=B`: a CARv1 file of the
/// streams or the bucket, streamed as it is written.
pub async fn export(
    State(app): State<Shared>,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> ApiResult<Response> {
    let streams = query_values(q.clone(), "stream")
        .into_iter()
        .map(|s| hydra_eventlog::StreamId::new(s).map_err(|e| ApiError::bad_request(e.to_string())))
        .collect::<ApiResult<Vec<_>>>()?;
    let bucket = query_values(q.clone(), "bucket").pop();
    let all = query_values(q, "all").pop().is_some_and(|v| v == "true");
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
                bucket
                    .export(log.identity(), crate::cli::transfer::now_ms(), w)
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
fn query_values(q: Option<String>, key: &str) -> Vec<String> {
    form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// `POST /import?writer=HEX`: the body is a CARv1 file from an export; it is
/// verified completely before anything is applied.
pub async fn import(
    State(app): State<Shared>,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
    body: axum::body::Body,
) -> ApiResult<Response> {
    use futures_util::StreamExt;
    let writers = crate::cli::transfer::writers(&query_values(q, "writer"))
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
        let bucket = crate::cli::transfer::bucket_of(file.path())
            .map_err(|e| ApiError::bad_request(format!("{e:#}")))?;
        let Some(name) = bucket else {
            return Ok(json!(a.log.import(file.path(), &writers)?));
        };
        let f = std::fs::File::open(file.path()).map_err(|e| ApiError::internal(e.to_string()))?;
        // Into the store that holds the bucket, or the event log's.
        let store = name
            .parse()
            .ok()
            .and_then(|n| a.store_of(&n).ok())
            .unwrap_or(&a.stores[0].1);
        Ok(json!(store.import(
            std::io::BufReader::new(f),
            &writers,
            a.keys.get(&name)
        )?))
    })
    .await?;
    Ok(Json(r).into_response())
}

/// `GET /tokens`.
pub async fn list_tokens(State(app): State<Shared>) -> Json<Vec<crate::access::TokenInfo>> {
    Json(app.gate.list().iter().map(|t| t.info()).collect())
}

#[derive(Deserialize)]
pub struct NewToken {
    name: String,
    scopes: Vec<String>,
}

/// `POST /tokens`: the answer holds the secret, which nothing keeps.
pub async fn create_token(
    State(app): State<Shared>,
    Json(t): Json<NewToken>,
) -> ApiResult<Response> {
    let a = app.clone();
    let (token, secret) = committing(move || Ok(a.gate.create(&t.name, &t.scopes)?)).await?;
    let info = crate::access::TokenInfo {
        secret: Some(secret),
        ..token.info()
    };
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

/// `DELETE /tokens/{name}`.
pub async fn revoke_token(
    State(app): State<Shared>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let a = app.clone();
    committing(move || Ok(a.gate.revoke(&name)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}
