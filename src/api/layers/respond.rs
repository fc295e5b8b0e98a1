//! Every error answer, in the protocol the client speaks. One place owns
//! the HTTP status (the one code table in `error`, or an HTTP-level status
//! such as 405, 413 or 415), `WWW-Authenticate` and `Retry-After`; each
//! protocol's codec only writes the error's bytes (a `google.rpc.Status`
//! as JSON, Connect's error object, gRPC-Web's trailer frame).

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::Full;
use tonic::Status;
use tonic::body::Body;

use super::connect::stream::end_of_stream;
use super::connect::wire::{self, Codec};
use super::connect::{is_grpc_path, media_type};
use super::grpc_web_json;
use super::transcode::errors::status_json;
use crate::error::{http_status, retry_after_secs};

/// The protocol a request speaks, read from its method, path and headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// gRPC: the status in trailers (or a trailers-only head).
    Grpc,
    /// gRPC-Web, binary or base64 text: a trailers-only head.
    GrpcWeb { text: bool },
    /// gRPC-Web's JSON mode: a trailer frame in the body.
    GrpcWebJson,
    /// A unary Connect call: the HTTP status and Connect's error object.
    Connect,
    /// A Connect stream: HTTP 200 and the end-of-stream envelope.
    ConnectStream(Codec),
    /// The HTTP/JSON routes (and anything else): the HTTP status and a
    /// `google.rpc.Status` as JSON.
    Http,
}

impl Protocol {
    pub fn of(method: &Method, path: &str, headers: &HeaderMap) -> Self {
        let kind = media_type(headers).unwrap_or_default();
        if kind == "application/grpc-web+json" {
            Self::GrpcWebJson
        } else if kind.starts_with("application/grpc-web-text") {
            Self::GrpcWeb { text: true }
        } else if kind.starts_with("application/grpc-web") {
            Self::GrpcWeb { text: false }
        } else if kind.starts_with("application/grpc") {
            Self::Grpc
        } else if let Some(codec) = kind
            .strip_prefix("application/connect+")
            .and_then(Codec::from_name)
        {
            Self::ConnectStream(codec)
        } else if is_grpc_path(path) && matches!(*method, Method::POST | Method::GET) {
            Self::Connect
        } else {
            Self::Http
        }
    }
}

/// `status` in `protocol`'s shape, with the HTTP status of its code.
pub fn respond(protocol: Protocol, status: &Status) -> Response<Body> {
    refuse(protocol, http_status(status.code()), status)
}

/// `status` in `protocol`'s shape. `http` is the HTTP status for the
/// protocols whose status line tells the outcome (the JSON routes and
/// unary Connect); the gRPC family and streams answer 200 and carry the
/// status in their own framing.
pub fn refuse(protocol: Protocol, http: StatusCode, status: &Status) -> Response<Body> {
    let mut response = match protocol {
        Protocol::Grpc => status.clone().into_http(),
        Protocol::GrpcWeb { text } => {
            let mut response = status.clone().into_http::<Body>();
            let kind = if text {
                "application/grpc-web-text+proto"
            } else {
                "application/grpc-web+proto"
            };
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            response
        }
        Protocol::GrpcWebJson => grpc_web_json::reply(None, status),
        Protocol::Connect => json(http, &wire::error_json(status)),
        Protocol::ConnectStream(codec) => {
            let mut response = body(
                StatusCode::OK,
                end_of_stream(Some(status), &HeaderMap::new()),
            );
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, codec.stream_content_type());
            response
        }
        Protocol::Http => json(http, &status_json(status)),
    };
    let headers = response.headers_mut();
    if status.code() == tonic::Code::Unauthenticated {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if matches!(protocol, Protocol::Http | Protocol::Connect)
        && let Some(secs) = retry_after_secs(status)
    {
        headers.insert(header::RETRY_AFTER, secs.into());
    }
    response
}

/// A JSON body with this HTTP status.
pub fn json(http: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    let bytes = serde_json::to_vec(value).expect("JSON values serialize");
    let mut response = body(http, Bytes::from(bytes));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn body(http: StatusCode, bytes: Bytes) -> Response<Body> {
    let mut response = Response::new(Body::new(Full::new(bytes)));
    *response.status_mut() = http;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protocol(method: Method, path: &str, kind: Option<&str>) -> Protocol {
        let mut headers = HeaderMap::new();
        if let Some(kind) = kind {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(kind).unwrap());
        }
        Protocol::of(&method, path, &headers)
    }

    #[test]
    fn protocols_are_told_apart() {
        let rpc = "/practice.v1.PracticeService/CreateSession";
        let cases = [
            (Method::POST, rpc, Some("application/grpc"), Protocol::Grpc),
            (
                Method::POST,
                rpc,
                Some("application/grpc+proto"),
                Protocol::Grpc,
            ),
            (
                Method::POST,
                rpc,
                Some("application/grpc-web-text"),
                Protocol::GrpcWeb { text: true },
            ),
            (
                Method::POST,
                rpc,
                Some("application/grpc-web+proto"),
                Protocol::GrpcWeb { text: false },
            ),
            (
                Method::POST,
                rpc,
                Some("application/grpc-web+json"),
                Protocol::GrpcWebJson,
            ),
            (
                Method::POST,
                rpc,
                Some("application/json"),
                Protocol::Connect,
            ),
            (Method::GET, rpc, None, Protocol::Connect),
            (
                Method::POST,
                rpc,
                Some("application/connect+json"),
                Protocol::ConnectStream(Codec::Json),
            ),
            (
                Method::POST,
                "/user/practice/sessions",
                Some("application/json"),
                Protocol::Http,
            ),
            (Method::DELETE, rpc, None, Protocol::Http),
        ];
        for (method, path, kind, want) in cases {
            assert_eq!(protocol(method, path, kind), want, "{kind:?}");
        }
    }

    #[test]
    fn each_protocol_gets_its_shape() {
        let status = Status::unauthenticated("no token");
        let http = respond(Protocol::Http, &status);
        assert_eq!(http.status(), 401);
        assert_eq!(http.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let grpc = respond(Protocol::Grpc, &status);
        assert_eq!(grpc.status(), 200);
        assert_eq!(grpc.headers()["grpc-status"], "16");
        assert_eq!(grpc.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let web = respond(Protocol::GrpcWeb { text: true }, &status);
        assert_eq!(
            web.headers()[header::CONTENT_TYPE],
            "application/grpc-web-text+proto"
        );
        let stream = respond(Protocol::ConnectStream(Codec::Proto), &status);
        assert_eq!(stream.status(), 200);
        assert_eq!(
            stream.headers()[header::CONTENT_TYPE],
            "application/connect+proto"
        );
        let too_large = Status::resource_exhausted("too large");
        assert_eq!(
            refuse(Protocol::Http, StatusCode::PAYLOAD_TOO_LARGE, &too_large).status(),
            413
        );
        assert_eq!(
            refuse(Protocol::Grpc, StatusCode::PAYLOAD_TOO_LARGE, &too_large).status(),
            200
        );
    }
}
