//! JSON error bodies: `google.rpc.Status` as JSON (`respond` gives them
//! their HTTP status and headers).

use base64::Engine;
use http::Response;
use prost::Message;
use serde_json::{Value as Json, json};
use tonic::body::Body;

use crate::api::layers::respond::{Protocol, respond};
use crate::error::Error;

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

/// A status as a `google.rpc.Status` JSON object.
pub fn status_json(status: &tonic::Status) -> Json {
    json!({
        "code": status.code() as i32,
        "message": status.message(),
        "details": details_to_json(status.details()),
    })
}

/// An error of the JSON routes, in their shape.
pub fn error_response(err: Error) -> Response<Body> {
    respond(Protocol::Http, &tonic::Status::from(err))
}
