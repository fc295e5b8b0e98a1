//! The HTTP/JSON face of the gRPC services: a generic, descriptor-driven
//! tower layer in front of gRPC-Web and the tonic routes.
//!
//! At start-up it reads every method's `google.api.http` rule. A matching
//! request is authenticated (before its body is read), turned into the
//! request message from its path variables, query and body, framed, and sent
//! to the inner gRPC service in-process as `application/grpc`; the reply's
//! frames and trailers (or a Trailers-Only reply) become JSON. gRPC and
//! gRPC-Web requests pass straight through. A new RPC needs only its
//! annotation.

pub mod errors;
mod fields;
#[cfg(test)]
mod generic_tests;
pub mod json;
pub mod json_out;
mod layer;
pub mod openapi;
pub mod routes;
mod schema_rules;
mod sse;
pub mod template;

pub use layer::TranscodeLayer;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use prost_reflect::DynamicMessage;
use serde_json::{Map, Value as Json};
use tonic::body::Body;
use tower::Service;

use self::errors::error_response;
use super::respond::{Protocol, json as json_response, refuse, respond};
use super::validate::Decoded;
use prost::Message as _;

use self::fields::insert_field;
use self::json::parse_message;
use self::json_out::JsonOut;
use self::routes::{BodyRule, Lookup, Route, Routes};
use self::template::Captures;
use super::reframe::ReframedBody;
use super::unary;
use crate::api::layers::auth::caller;
use crate::error::Error;

pub struct Transcoder {
    routes: Routes,
    rules: Arc<crate::api::validation::Rules>,
    openapi: Bytes,
    body_limit: usize,
}

impl Transcoder {
    /// The routes of the catalog's RPCs that declare them, with its rules.
    pub fn new(rpcs: &super::rpcs::Rpcs, body_limit: usize) -> Result<Self, String> {
        let routes = Routes::from_pool(rpcs.pool())?;
        let rules = rpcs.rules().clone();
        let openapi = serde_json::to_vec_pretty(&openapi::document(&routes, (*rules).clone()))
            .map_err(|e| e.to_string())?;
        Ok(Self {
            routes,
            rules,
            openapi: openapi.into(),
            body_limit,
        })
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// Does the request declare a body?
pub(crate) fn declares_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > 0)
}

impl Transcoder {
    /// The gRPC path of the route a request matches, if it is one of ours
    /// (gRPC and gRPC-Web requests never are).
    pub(crate) fn target(&self, method: &Method, path: &str, headers: &HeaderMap) -> Option<&str> {
        if layer::is_grpc(headers) {
            return None;
        }
        match self.routes.lookup(method, path, sse::wants_events(headers)) {
            Lookup::Found(route, _) => Some(&route.grpc_path),
            _ => None,
        }
    }

    async fn handle<S>(&self, request: Request<Body>, inner: S) -> Response<Body>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Send,
        S::Future: Send,
    {
        let path = request.uri().path();
        // The OpenAPI document, made from the same rules.
        if request.method() == Method::GET && path == "/openapi.json" {
            let mut r = Response::new(Body::new(Full::new(self.openapi.clone())));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return r;
        }
        let wants_events = sse::wants_events(request.headers());
        match self.routes.lookup(request.method(), path, wants_events) {
            Lookup::Found(route, captures) => {
                match self.transcode(route, captures, request, inner).await {
                    Ok(response) => response,
                    Err(response) => response,
                }
            }
            Lookup::WrongMethod(allowed) => {
                let allow = allowed
                    .iter()
                    .map(Method::as_str)
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut r = refuse(
                    Protocol::Http,
                    StatusCode::METHOD_NOT_ALLOWED,
                    &tonic::Status::new(
                        tonic::Code::Unimplemented,
                        format!("{} is not allowed on {path}; use {allow}", request.method()),
                    ),
                );
                if let Ok(v) = HeaderValue::from_str(&allow) {
                    r.headers_mut().insert(header::ALLOW, v);
                }
                r
            }
            Lookup::NotFound => refuse(
                Protocol::Http,
                StatusCode::NOT_FOUND,
                &tonic::Status::new(
                    tonic::Code::NotFound,
                    format!("no route for {} {}", request.method(), path),
                ),
            ),
        }
    }

    async fn transcode<S>(
        &self,
        route: &Route,
        captures: Captures,
        request: Request<Body>,
        inner: S,
    ) -> Result<Response<Body>, Response<Body>>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Send,
        S::Future: Send,
    {
        let (parts, body) = request.into_parts();

        // Authentication first: a refused caller's body is never read.
        let principal = match caller(&parts.extensions) {
            Ok(principal) => principal,
            Err(err) => {
                crate::api::layers::drain(body).await;
                return Err(error_response(err));
            }
        };

        let input = route.input();
        let mut object = Map::new();
        if route.body != BodyRule::None {
            if (declares_body(&parts.headers) || parts.headers.contains_key(header::CONTENT_TYPE))
                && !is_json(&parts.headers)
            {
                return Err(refuse(
                    Protocol::Http,
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    &tonic::Status::new(
                        tonic::Code::InvalidArgument,
                        "the request body must be JSON: send Content-Type: application/json",
                    ),
                ));
            }
            let declared = parts
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > self.body_limit as u64) {
                return Err(self.too_large());
            }
            let bytes = match Limited::new(body, self.body_limit).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    return Err(self.too_large());
                }
                Err(_) => {
                    return Err(refuse(
                        Protocol::Http,
                        StatusCode::BAD_REQUEST,
                        &tonic::Status::new(
                            tonic::Code::InvalidArgument,
                            "the request body could not be read",
                        ),
                    ));
                }
            };
            // No body at all is an empty request; a body, even one of only
            // whitespace, must be JSON.
            let value: Option<Json> = if bytes.is_empty() {
                None
            } else {
                let field = match &route.body {
                    BodyRule::Field(name) => json::find_field(&input, name),
                    _ => None,
                };
                // The size rules first, on the text: nothing is built for
                // a list or a free-form value past its bound.
                if let Some(v) = self.rules.oversized_json(&input, field.as_ref(), &bytes) {
                    return Err(error_response(Error::invalid(vec![v])));
                }
                Some(json::parse_body(&bytes).map_err(error_response)?)
            };
            match (&route.body, value) {
                (_, None) => {}
                (BodyRule::Whole, Some(Json::Object(o))) => object = o,
                (BodyRule::Whole, Some(_)) => {
                    return Err(error_response(Error::invalid_field(
                        "body",
                        "must be a JSON object",
                    )));
                }
                (BodyRule::Field(_), Some(Json::Null)) => {}
                (BodyRule::Field(name), Some(value)) => {
                    object.insert(name.clone(), value);
                }
                (BodyRule::None, _) => unreachable!(),
            }
            // One spelling per field, so the path's value can't be
            // contradicted under the other one.
            json::one_spelling_each(&input, &object, "").map_err(error_response)?;
        }

        // Query parameters set the fields the body doesn't carry.
        if let Some(query) = parts.uri.query() {
            for (key, value) in form_urlencoded::parse(query.as_bytes()) {
                if route.body == BodyRule::Whole {
                    return Err(error_response(Error::invalid_field(
                        &key,
                        "this route takes its fields from the JSON body, not the query",
                    )));
                }
                let path: Vec<String> = key.split('.').map(str::to_owned).collect();
                insert_field(&input, &mut object, &path, &value, "query", true)
                    .map_err(error_response)?;
            }
        }
        for (path, value) in &captures {
            insert_field(&input, &mut object, path, value, "URL path", false)
                .map_err(error_response)?;
        }

        let message = parse_message(&input, object).map_err(error_response)?;

        let body = unary::grpc_body(&message.encode_to_vec());
        let mut call = unary::request(&route.grpc_path, &parts.headers, principal, body)
            .map_err(|status| respond(Protocol::Http, &status))?;
        Decoded::attach(&mut call, Some(message));
        if route.streams {
            return Ok(events(inner, call, route.output()).await);
        }

        Ok(match unary::call(inner, call).await {
            Ok(payload) => match DynamicMessage::decode(route.output(), payload) {
                Ok(message) => json_response(StatusCode::OK, &JsonOut(&message)),
                Err(_) => respond(
                    Protocol::Http,
                    &tonic::Status::internal("the RPC reply could not be decoded"),
                ),
            },
            Err(status) => respond(Protocol::Http, &status),
        })
    }

    fn too_large(&self) -> Response<Body> {
        refuse(
            Protocol::Http,
            StatusCode::PAYLOAD_TOO_LARGE,
            &unary::too_large(self.body_limit),
        )
    }
}

/// Calls a server-streaming RPC and answers with its messages as
/// Server-Sent Events. A refusal before the first message (a Trailers-Only
/// reply) is an ordinary JSON error with its HTTP status.
async fn events<S>(
    mut inner: S,
    call: Request<Body>,
    output: prost_reflect::MessageDescriptor,
) -> Response<Body>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Send,
    S::Future: Send,
{
    let Ok(reply) = inner.call(call).await;
    if let Some(status) = tonic::Status::from_header_map(reply.headers())
        && status.code() != tonic::Code::Ok
    {
        return respond(Protocol::Http, &status);
    }
    let events = sse::Events { output };
    let mut response = Response::new(Body::new(ReframedBody::new(
        reply.into_body(),
        None,
        events,
    )));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies that buffer (nginx) pass events on as they come.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}
