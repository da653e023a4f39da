//! The route table: every route is added through [`Api::add`], which also
//! records it for the OpenAPI document, so the two cannot drift apart.

use axum::Router;
use axum::routing::MethodRouter;
use serde_json::{Map, Value, json};

use super::app::Shared;
use super::auth::{self, Rule};

/// A documented route.
#[derive(Debug, Clone)]
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// Who may call it.
    pub rule: Rule,
}

pub struct Api {
    pub router: Router<Shared>,
    pub routes: Vec<RouteDoc>,
}

impl Api {
    pub fn new() -> Api {
        Api {
            router: Router::new(),
            routes: Vec::new(),
        }
    }

    /// Adds `handler` for `method path` behind the token gate of `rule`,
    /// and documents it.
    pub fn add(
        mut self,
        method: &'static str,
        path: &'static str,
        summary: &'static str,
        rule: Rule,
        handler: MethodRouter<Shared>,
    ) -> Api {
        let handler = handler.route_layer(axum::middleware::from_fn(move |req, next| {
            auth::http(rule, req, next)
        }));
        self.router = self.router.route(path, handler);
        self.routes.push(RouteDoc {
            method,
            path,
            summary,
            rule,
        });
        self
    }

    /// The OpenAPI 3 document of every added route.
    pub fn openapi(routes: &[RouteDoc]) -> Value {
        let mut paths = Map::new();
        for r in routes {
            let params: Vec<Value> = r
                .path
                .split('/')
                .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .map(|p| {
                    json!({"name": p.trim_start_matches('*'), "in": "path", "required": true, "schema": {"type": "string"}})
                })
                .collect();
            let entry = paths
                .entry(r.path.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            // Open routes need no token; the others a bearer token once
            // one exists (see `auth.rs`), `x-scope` saying which.
            let security = if r.rule == Rule::Open {
                json!([])
            } else {
                json!([{"bearer": []}])
            };
            entry.as_object_mut().expect("an object").insert(
                r.method.to_lowercase(),
                json!({
                    "summary": r.summary,
                    "x-scope": r.rule.doc(),
                    "security": security,
                    "parameters": params,
                    "responses": {"200": {"description": "success"}, "default": {"description": "an error: {\"error\": \"...\"}"}}
                }),
            );
        }
        json!({
            "openapi": "3.0.3",
            "info": {"title": "Hydra", "version": env!("CARGO_PKG_VERSION")},
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "An API token (hydra token create); required once one exists"}}},
            "paths": paths,
        })
    }
}
