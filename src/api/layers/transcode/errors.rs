//! JSON error bodies: `google.rpc.Status` as JSON, with the HTTP status
//! from the one code table the gRPC side uses.

use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use prost::Message;
use serde_json::{Value as Json, json};
use tonic::body::Body;

use crate::error::{Error, http_status, retry_after_secs};

pub fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response<Body> {
    let bytes = serde_json::to_vec(body).expect("JSON values serialize");
    let mut response = Response::new(Body::new(Full::new(Bytes::from(bytes))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The `details` of a `google.rpc.Status`, as JSON objects with `@type`.
fn details_to_json(details: &[u8]) -> Vec<Json> {
    let Ok(status) = tonic_types::pb::Status::decode(details) else {
        return Vec::new();
    };
    status
        .details
        .iter()
        .map(|any| {
            if any.type_url.ends_with("/google.rpc.BadRequest")
                && let Ok(bad) = tonic_types::pb::BadRequest::decode(any.value.as_slice())
            {
                return json!({
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "field_violations": bad.field_violations.iter().map(|v| json!({
                        "field": v.field,
                        "description": v.description,
                    })).collect::<Vec<_>>(),
                });
            }
            if any.type_url.ends_with("/google.rpc.QuotaFailure")
                && let Ok(quota) = tonic_types::pb::QuotaFailure::decode(any.value.as_slice())
            {
                return json!({
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": quota.violations.iter().map(|v| json!({
                        "subject": v.subject,
                        "description": v.description,
                    })).collect::<Vec<_>>(),
                });
            }
            if any.type_url.ends_with("/google.rpc.RetryInfo")
                && let Ok(retry) = tonic_types::pb::RetryInfo::decode(any.value.as_slice())
            {
                // proto3 JSON of a Duration: seconds with a suffix.
                let delay = retry.retry_delay.unwrap_or_default();
                let seconds = delay.seconds as f64 + f64::from(delay.nanos) / 1e9;
                return json!({
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retry_delay": format!("{seconds}s"),
                });
            }
            json!({
                "@type": any.type_url,
                "value": base64::engine::general_purpose::STANDARD.encode(&any.value),
            })
        })
        .collect()
}

/// A gRPC status as the JSON error response.
/// A status as a `google.rpc.Status` JSON object.
pub fn status_json(status: &tonic::Status) -> Json {
    json!({
        "code": status.code() as i32,
        "message": status.message(),
        "details": details_to_json(status.details()),
    })
}

pub fn status_response(status: &tonic::Status) -> Response<Body> {
    let http = http_status(status.code());
    let mut response = json_response(http, &status_json(status));
    if http == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if let Some(secs) = retry_after_secs(status) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.into());
    }
    response
}

pub fn error_response(err: Error) -> Response<Body> {
    status_response(&tonic::Status::from(err))
}

/// An HTTP-level refusal (404, 405, 413, 415) in the same body shape.
pub fn plain_error(http: StatusCode, code: tonic::Code, message: &str) -> Response<Body> {
    json_response(
        http,
        &json!({"code": code as i32, "message": message, "details": []}),
    )
}
