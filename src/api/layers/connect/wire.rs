//! The Connect protocol's own wire pieces: its error body, its codecs and
//! compression, and its timeout header.

use std::io::{Read, Write};

use base64::Engine;
use bytes::Bytes;
use http::HeaderValue;
use prost::Message;
use serde_json::{Value as Json, json};

/// How a Connect message is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Proto,
    Json,
}

impl Codec {
    /// The codec of a unary `Content-Type` (or GET `encoding`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "proto" => Some(Codec::Proto),
            "json" => Some(Codec::Json),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Codec::Proto => "application/proto",
            Codec::Json => "application/json",
        }
    }

    /// The `Content-Type` of a stream in this codec.
    pub fn stream_content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Codec::Proto => "application/connect+proto",
            Codec::Json => "application/connect+json",
        })
    }
}

/// Connect's name for a gRPC code: its lowercase snake_case form.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "ok",
        Cancelled => "canceled",
        Unknown => "unknown",
        InvalidArgument => "invalid_argument",
        DeadlineExceeded => "deadline_exceeded",
        NotFound => "not_found",
        AlreadyExists => "already_exists",
        PermissionDenied => "permission_denied",
        ResourceExhausted => "resource_exhausted",
        FailedPrecondition => "failed_precondition",
        Aborted => "aborted",
        OutOfRange => "out_of_range",
        Unimplemented => "unimplemented",
        Internal => "internal",
        Unavailable => "unavailable",
        DataLoss => "data_loss",
        Unauthenticated => "unauthenticated",
    }
}

/// A status as Connect's JSON error: `code`, `message`, and `details` whose
/// `type` is the message's full name and `value` its unpadded base64.
pub fn error_json(status: &tonic::Status) -> Json {
    let details: Vec<Json> = tonic_types::pb::Status::decode(status.details())
        .map(|s| s.details)
        .unwrap_or_default()
        .into_iter()
        .map(|any| {
            let name = any.type_url.rsplit('/').next().unwrap_or_default();
            json!({
                "type": name,
                "value": base64::engine::general_purpose::STANDARD_NO_PAD.encode(&any.value),
            })
        })
        .collect();
    let mut error = json!({"code": code_name(status.code()), "message": status.message()});
    if !details.is_empty() {
        error["details"] = Json::Array(details);
    }
    error
}

/// `Connect-Timeout-Ms`: at most 10 digits of milliseconds.
pub fn timeout_ms(value: &str) -> Option<u64> {
    (!value.is_empty() && value.len() <= 10 && value.bytes().all(|b| b.is_ascii_digit()))
        .then(|| value.parse().ok())
        .flatten()
}

/// A compression the service speaks: none, or gzip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Identity,
    Gzip,
}

impl Compression {
    pub fn from_name(name: Option<&str>) -> Result<Self, tonic::Status> {
        match name.map(str::trim) {
            None | Some("") | Some("identity") => Ok(Compression::Identity),
            Some("gzip") => Ok(Compression::Gzip),
            Some(other) => Err(tonic::Status::unimplemented(format!(
                "unknown compression {other:?}: this server supports gzip and identity"
            ))),
        }
    }

    /// Decompresses at most `limit` bytes; more is an error.
    pub fn decompress(self, bytes: Bytes, limit: usize) -> Result<Bytes, tonic::Status> {
        match self {
            Compression::Identity => Ok(bytes),
            Compression::Gzip => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(bytes.as_ref())
                    .take(limit as u64 + 1)
                    .read_to_end(&mut out)
                    .map_err(|_| tonic::Status::invalid_argument("the gzip body is corrupt"))?;
                if out.len() > limit {
                    return Err(super::super::unary::too_large(limit));
                }
                Ok(out.into())
            }
        }
    }

    pub fn compress(self, bytes: Vec<u8>) -> Vec<u8> {
        match self {
            Compression::Identity => bytes,
            Compression::Gzip => {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                encoder
                    .write_all(&bytes)
                    .and_then(|()| encoder.finish())
                    .expect("writing to a Vec does not fail")
            }
        }
    }
}

/// Does an `Accept-Encoding` list include gzip?
pub fn accepts_gzip(value: Option<&HeaderValue>) -> bool {
    value.and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(',')
            .any(|e| e.split(';').next().is_some_and(|e| e.trim() == "gzip"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_connect_codes_and_typed_details() {
        let status: tonic::Status = crate::error::Error::invalid_field("title", "too long").into();
        let body = error_json(&status);
        assert_eq!(body["code"], "invalid_argument");
        assert_eq!(body["details"][0]["type"], "google.rpc.BadRequest");
        let value = body["details"][0]["value"].as_str().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(value)
            .unwrap();
        let bad = tonic_types::pb::BadRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(bad.field_violations[0].field, "title");
    }

    #[test]
    fn gzip_round_trips_and_is_bounded() {
        let data = vec![7u8; 10_000];
        let packed = Bytes::from(Compression::Gzip.compress(data.clone()));
        assert!(packed.len() < 200);
        assert_eq!(
            Compression::Gzip
                .decompress(packed.clone(), 10_000)
                .unwrap(),
            data
        );
        let err = Compression::Gzip.decompress(packed, 9_999).unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(Compression::from_name(Some("br")).is_err());
    }

    #[test]
    fn timeouts() {
        assert_eq!(timeout_ms("1500"), Some(1500));
        for bad in ["", "-1", "1.5", "12345678901"] {
            assert_eq!(timeout_ms(bad), None, "{bad}");
        }
    }
}
