//! Request extractors whose refusals answer as every other error does (an
//! [`ErrorBody`](super::error::ErrorBody) in JSON, as the OpenAPI document
//! says), not with axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::ApiError;

/// Path parameters.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// The query string.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> ApiError {
        ApiError::new(e.status(), e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> ApiError {
        ApiError::new(e.status(), e.body_text())
    }
}

/// A JSON object as the request body, whatever the `Content-Type` says
/// (as for appends: `curl -d` sends JSON labelled as a form).
///
/// Read as JSON Schema reads it, which is how the document describes it:
/// a number with no fraction is an integer whichever way it is written
/// (`3`, `3.0`, `3e0`), and only an object is an object (serde would
/// also take an array for a struct's fields in order).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<JsonBody<T>, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        let mut value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
        if !value.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        integers(&mut value);
        serde_json::from_value(value)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request(format!("bad body: {e}")))
    }
}

/// Turns every number without a fraction into an integer.
fn integers(v: &mut Value) {
    match v {
        Value::Number(n) => {
            if let Some(i) = crate::events::integer(n) {
                *n = i;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integers),
        Value::Object(fields) => fields.values_mut().for_each(integers),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_without_a_fraction_are_integers() {
        let mut v: Value =
            serde_json::from_str(r#"{"a": 3.0, "b": [1e2, -2.0, 0.5], "c": {"d": 4}}"#).unwrap();
        integers(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a": 3, "b": [100, -2, 0.5], "c": {"d": 4}})
        );
        assert!(v["a"].is_u64() && v["b"][1].is_i64());
    }
}
