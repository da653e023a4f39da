//! The route table: every route is added through [`Api::add`] from its
//! handler's `#[utoipa::path]`, which gives the method, the path, the
//! parameters and the request and response types the handler uses, so the
//! router and the OpenAPI document cannot drift apart.

use axum::Router;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Paths, Ref,
    ResponseBuilder,
};
use utoipa::{PartialSchema, ToSchema};
use utoipa_axum::router::UtoipaMethodRouter;

use super::app::Shared;
use super::auth::{self, Rule};
use super::error::ErrorBody;

/// Path parameters that take the rest of the path, slashes included
/// (object keys): `{key}` in the document, `{*key}` to the router.
const REST_OF_PATH: &[&str] = &["key"];

pub struct Api {
    pub router: Router<Shared>,
    pub doc: OpenApi,
}

impl Api {
    pub fn new() -> Api {
        let doc = OpenApiBuilder::new()
            .info(
                InfoBuilder::new()
                    .title("Hydra")
                    .version(env!("CARGO_PKG_VERSION"))
                    .description(Some(
                        "Hydra's HTTP API: streams, $all, subscriptions, buckets, blocks, objects, replication. Every error answers {\"error\": \"...\"}.",
                    ))
                    .build(),
            )
            .components(Some(
                ComponentsBuilder::new()
                    .schema(ErrorBody::name(), ErrorBody::schema())
                    .security_scheme(
                        "bearer",
                        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
                    )
                    .build(),
            ))
            .paths(Paths::new())
            .build();
        Api {
            router: Router::new(),
            doc,
        }
    }

    /// Adds a handler (from `utoipa_axum::routes!`) behind the token gate
    /// of `rule`, and documents it: the handler's own operation, plus who
    /// may call it (`x-scope`, a bearer token) and the error answers every
    /// route can give.
    pub fn add(mut self, rule: Rule, (schemas, paths, handler): UtoipaMethodRouter<Shared>) -> Api {
        let handler = handler.route_layer(axum::middleware::from_fn(move |req, next| {
            auth::http(rule, req, next)
        }));
        for (path, mut item) in paths.paths {
            for op in operations(&mut item) {
                document_access(op, rule);
            }
            self.router = self.router.route(&router_path(&path), handler.clone());
            match self.doc.paths.paths.get_mut(&path) {
                Some(it) => it.merge_operations(item),
                None => {
                    self.doc.paths.paths.insert(path, item);
                }
            }
        }
        self.doc
            .components
            .get_or_insert_with(Default::default)
            .schemas
            .extend(schemas);
        self
    }
}

impl Api {
    /// The OpenAPI document, its integers bounded as their Rust types are
    /// (JSON Schema knows no `uint64`: a client or fuzzer reads the bounds).
    pub fn document(&self) -> serde_json::Value {
        let mut doc = serde_json::to_value(&self.doc).expect("the document serialises");
        bound_integers(&mut doc);
        doc
    }
}

fn bound_integers(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(o) => {
            let bounds: Option<(&str, Value, Value)> = match o.get("format").and_then(Value::as_str)
            {
                Some("u-int8") => Some(("uint8", 0.into(), u8::MAX.into())),
                Some("u-int16") => Some(("uint16", 0.into(), u16::MAX.into())),
                Some("u-int32") => Some(("uint32", 0.into(), u32::MAX.into())),
                Some("u-int64") => Some(("uint64", 0.into(), u64::MAX.into())),
                Some("int32") => Some(("int32", i32::MIN.into(), i32::MAX.into())),
                Some("int64") => Some(("int64", i64::MIN.into(), i64::MAX.into())),
                _ => None,
            };
            if let Some((format, min, max)) = bounds {
                o.insert("format".into(), format.into());
                o.entry("minimum").or_insert(min);
                o.entry("maximum").or_insert(max);
            }
            o.values_mut().for_each(bound_integers);
        }
        Value::Array(items) => items.iter_mut().for_each(bound_integers),
        _ => {}
    }
}

/// Bytes as they are, as a request or response body.
pub struct Binary;

impl PartialSchema for Binary {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Binary,
            )))
            .into()
    }
}

impl ToSchema for Binary {}

/// The router's form of a documented path.
fn router_path(path: &str) -> String {
    REST_OF_PATH.iter().fold(path.to_owned(), |p, name| {
        p.replace(&format!("{{{name}}}"), &format!("{{*{name}}}"))
    })
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
        &mut item.head,
        &mut item.options,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// Who may call an operation, and the errors any call can meet.
fn document_access(op: &mut Operation, rule: Rule) {
    op.extensions
        .get_or_insert_with(Default::default)
        .insert("x-scope".into(), rule.doc().into());
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(ErrorBody::name())))
                    .build(),
            )
            .build()
    };
    let responses = &mut op.responses.responses;
    if rule == Rule::Open {
        op.security = Some(vec![SecurityRequirement::default()]);
    } else {
        op.security = Some(vec![SecurityRequirement::new::<_, _, String>("bearer", [])]);
        responses
            .entry("401".into())
            .or_insert_with(|| error("No token, or an unknown one (once a token exists)").into());
        responses
            .entry("403".into())
            .or_insert_with(|| error("The token lacks the scope (x-scope)").into());
    }
    responses.entry("default".into()).or_insert_with(|| {
        error("Any other error: 503 when the daemon is busy or stopping, 500 on a storage fault")
            .into()
    });
}
