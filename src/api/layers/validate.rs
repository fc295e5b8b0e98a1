//! Request validation for every protocol, in one place: each RPC's request
//! message is checked against the `buf.validate` rules declared on it in
//! the proto (`api::validation`) before any handler runs. Every
//! protocol reaches the routes as gRPC, so JSON, gRPC-Web and Connect
//! clients meet the same rules and get the same field violations.
//!
//! The layer also bounds what a valid-looking message may cost: free-form
//! objects (`google.protobuf.Struct`) nest at most `MAX_NESTING` levels,
//! and a message that can't be decoded is refused with a plain message
//! rather than the decoder's.

use std::convert::Infallible;
use std::sync::Arc;

use http::{Request, Response};
use http_body_util::Full;
use prost_reflect::{DynamicMessage, ReflectMessage, Value};
use tonic::Status;
use tonic::body::Body;
use tower::Service;

use super::rpcs::{self, Rpc, Rpcs};
use super::{BoxFuture, Middleware, MiddlewareLayer, unary};
use crate::error::{Error, MAX_VIOLATIONS};

/// The deepest nesting of free-form objects and lists a request may carry.
pub const MAX_NESTING: usize = 32;

/// What a request nested past `MAX_NESTING` is told, on every protocol.
pub fn nested_too_deeply() -> String {
    format!("free-form objects and lists may nest at most {MAX_NESTING} levels")
}

/// Is this JSON parser error serde_json's nesting guard (which stops at
/// 128 levels, past `MAX_NESTING`)? Such a request gets
/// `nested_too_deeply`, not the parser's words.
pub fn is_json_nesting_error(e: &dyn std::fmt::Display) -> bool {
    e.to_string().starts_with("recursion limit exceeded")
}

/// The most values (objects, lists, their items and members, scalars) a
/// JSON request may hold. Parsing costs tens of bytes per value, so this,
/// not the body size, is what bounds a JSON request's memory. Far above
/// any valid request: the largest, a class with 10,000 members, holds
/// about 30,000.
pub const MAX_JSON_VALUES: usize = 50_000;

/// What a JSON request past `MAX_JSON_VALUES` is told, on every protocol.
pub fn too_many_json_values() -> String {
    format!("a JSON request may hold at most {MAX_JSON_VALUES} values")
}

/// Does this JSON text hold more than `MAX_JSON_VALUES` values? Counted
/// before parsing, in one pass without allocating: every value but the
/// first follows a comma or opens a container, so commas plus opening
/// brackets plus one is never below the count.
pub fn holds_too_many_json_values(bytes: &[u8]) -> bool {
    let (mut count, mut in_string, mut escaped) = (1usize, false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b',' | b'[' | b'{' => {
                count += 1;
                if count > MAX_JSON_VALUES {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

/// A request message a protocol codec already built (from JSON): it
/// travels with the in-process request, so this layer checks it as it is
/// rather than decoding the bytes made from it.
#[derive(Clone)]
pub struct Decoded(pub DynamicMessage);

impl Decoded {
    /// Puts a codec's message beside its in-process request.
    pub fn attach(request: &mut Request<Body>, message: Option<DynamicMessage>) {
        if let Some(message) = message {
            request.extensions_mut().insert(Decoded(message));
        }
    }
}

/// Counted by a test: each request's message is built once, by its codec
/// or here.
pub(crate) fn message_built() {
    tracing::debug!(target: "ingress", "request message built");
}

#[derive(Clone)]
pub struct Validate(Arc<Inner>);

struct Inner {
    rpcs: Rpcs,
    body_limit: usize,
}

pub type ValidateLayer = MiddlewareLayer<Validate>;

impl ValidateLayer {
    pub fn new(rpcs: Rpcs, body_limit: usize) -> Self {
        MiddlewareLayer(Validate(Arc::new(Inner { rpcs, body_limit })))
    }
}

impl Middleware for Validate {
    fn call<S>(
        &self,
        mut inner: S,
        mut request: Request<Body>,
    ) -> BoxFuture<Response<Body>, Infallible>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Send + 'static,
        S::Future: Send + 'static,
    {
        // Client-streaming RPCs take no one message to check.
        let rpc = self.0.rpcs.get(request.uri().path());
        let Some(rpc) = rpc
            .filter(|rpc| rpc.shape != rpcs::Shape::ClientStream)
            .cloned()
        else {
            return Box::pin(inner.call(request));
        };
        // A message its codec built (and size-checked on its text) is
        // checked as it is; its body stays as it came.
        if let Some(Decoded(message)) = request.extensions_mut().remove::<Decoded>() {
            return Box::pin(async move {
                match check_message(&rpc, &message) {
                    Ok(()) => inner.call(request).await,
                    Err(err) => Ok(Status::from(err).into_http()),
                }
            });
        }
        let this = self.0.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let bytes = match unary::read_body(body, this.body_limit + 5).await {
                Ok(bytes) => bytes,
                Err(_) => return Ok(unary::too_large(this.body_limit).into_http()),
            };
            // A compressed or malformed frame is left to the gRPC server,
            // which refuses it.
            if let Ok(message) = unary::first_message(&bytes)
                && let Err(err) = check(&rpc, message)
            {
                return Ok(Status::from(err).into_http());
            }
            let request = Request::from_parts(parts, Body::new(Full::new(bytes)));
            inner.call(request).await
        })
    }
}

/// The request rules of `rpc` on its encoded request message: the size
/// rules on the wire first, then the rest on the decoded message.
fn check(rpc: &Rpc, bytes: bytes::Bytes) -> Result<(), Error> {
    let input = rpc.input.clone();
    if let Some(violation) = rpc.rules().oversized_list(&input, &bytes) {
        return Err(Error::invalid(vec![violation]));
    }
    message_built();
    let message = DynamicMessage::decode(input, bytes).map_err(|_| {
        Error::invalid_field(
            "",
            "the request message could not be decoded: it is malformed, or nests \
                 more deeply than the server accepts",
        )
    })?;
    check_message(rpc, &message)
}

/// The rules on a decoded request message: its nesting, then the proto's.
fn check_message(rpc: &Rpc, message: &DynamicMessage) -> Result<(), Error> {
    let mut shape = Shape::default();
    shape.walk(message, 0);
    if shape.deepest > MAX_NESTING {
        return Err(Error::invalid_field("", nested_too_deeply()));
    }
    // One more than are listed, so the error can say there were more;
    // the search stops there, whatever the input's size.
    let violations = rpc.rules().check(message, MAX_VIOLATIONS + 1);
    if violations.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid(violations))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_are_never_undercounted() {
        let list = |n: usize| format!("[{}]", vec!["0"; n].join(","));
        assert!(!holds_too_many_json_values(
            list(MAX_JSON_VALUES - 1).as_bytes()
        ));
        assert!(holds_too_many_json_values(list(MAX_JSON_VALUES).as_bytes()));
        // Commas and brackets inside strings, escaped quotes included, are
        // text, not values.
        let text = format!(r#"{{"a": "\"{}"}}"#, ",[{".repeat(MAX_JSON_VALUES));
        assert!(!holds_too_many_json_values(text.as_bytes()));
        // The largest valid request fits: a class with 10,000 members.
        let member = r#"{"user_id": 12345, "role": "student"}"#;
        let class = format!(
            r#"{{"name": "c", "members": [{}]}}"#,
            vec![member; 10_000].join(",")
        );
        assert!(!holds_too_many_json_values(class.as_bytes()));
    }
}

/// How deep free-form values nest in a message.
#[derive(Default)]
struct Shape {
    deepest: usize,
}

impl Shape {
    /// `depth` counts the free-form objects and lists around `message`.
    fn walk(&mut self, message: &DynamicMessage, depth: usize) {
        let depth = match message.descriptor().full_name() {
            "google.protobuf.Struct" | "google.protobuf.ListValue" => depth + 1,
            _ => depth,
        };
        self.deepest = self.deepest.max(depth);
        if self.deepest > MAX_NESTING {
            return;
        }
        for (_, value) in message.fields() {
            self.value(value, depth);
        }
    }

    fn value(&mut self, value: &Value, depth: usize) {
        match value {
            Value::Message(m) => self.walk(m, depth),
            Value::List(items) => {
                for item in items {
                    self.value(item, depth);
                }
            }
            Value::Map(entries) => {
                for v in entries.values() {
                    self.value(v, depth);
                }
            }
            _ => {}
        }
    }
}
