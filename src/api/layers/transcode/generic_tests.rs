//! The transcoder on a service of its own (compiled here with protox), to
//! show the rule forms the practice API doesn't use: `body: "field"`,
//! `additional_bindings`, multi-segment variables, nested path fields,
//! query parameters (repeated, nested, bool) and the path winning over
//! nothing. The inner gRPC service echoes the request message it got.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tonic::body::Body;
use tower::{Service, ServiceExt};

use super::{TranscodeLayer, Transcoder};
use crate::auth::{Authenticator, ClaimRules, Keys, sign_hs256};

const PROTO: &str = r#"
syntax = "proto3";
package test.v1;
import "google/api/annotations.proto";
import "practice/v1/rpc.proto";

service Echo {
  option (practice.v1.service).access = ACCESS_USER;
  rpc Update(UpdateRequest) returns (UpdateRequest) {
    option (google.api.http) = {
      patch: "/v1/{name=shelves/*/books/*}"
      body: "book"
      additional_bindings { put: "/v1/books/{book.id}" body: "*" }
    };
  }
  rpc List(ListRequest) returns (ListRequest) {
    option (google.api.http) = { get: "/v1/shelves/{shelf}/books:search" };
  }
}

message Book { int64 id = 1; string title = 2; }
message UpdateRequest { string name = 1; Book book = 2; }
message ListRequest {
  string shelf = 1;
  int32 page_size = 2;
  repeated string tags = 3;
  Book filter = 4;
  bool verbose = 5;
}
"#;

struct Files;

impl protox::file::FileResolver for Files {
    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        if name == "test/v1/echo.proto" {
            return protox::file::File::from_source(name, PROTO);
        }
        let mut chain = protox::file::ChainFileResolver::new();
        chain.add(protox::file::IncludeFileResolver::new(
            concat!(env!("CARGO_MANIFEST_DIR"), "/proto").into(),
        ));
        chain.add(protox::file::GoogleFileResolver::new());
        chain.open_file(name)
    }
}

const SECRET: &[u8] = b"generic-transcoder-test-secret-0123456789";

async fn echo_stack()
-> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone {
    let mut compiler = protox::Compiler::with_file_resolver(Files);
    compiler
        .include_imports(true)
        .open_files(["test/v1/echo.proto"])
        .unwrap();
    let descriptors = compiler.encode_file_descriptor_set();
    let auth = Arc::new(Authenticator::new(
        Keys::hs256(SECRET.to_vec()),
        ClaimRules::default(),
    ));
    let rpcs = crate::api::layers::rpcs::Rpcs::new(&descriptors, &[]).unwrap();
    let transcoder = Arc::new(Transcoder::new(&rpcs, 4096).unwrap());
    let ingress = crate::api::layers::ingress::IngressLayer::new(
        auth,
        rpcs,
        transcoder.clone(),
        crate::api::layers::ingress::IngressOptions {
            timeout: std::time::Duration::from_secs(5),
            body_limit: 4096,
            max_buffered_bytes: 1 << 20,
        },
    );
    // The "RPC": answer the request message back, status in the trailers.
    let echo = tower::service_fn(|request: Request<Body>| async move {
        let body = request.into_body().collect().await.unwrap().to_bytes();
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        let frames = futures::stream::iter(vec![
            Ok::<_, Infallible>(Frame::data(body)),
            Ok(Frame::trailers(trailers)),
        ]);
        Ok::<_, Infallible>(Response::new(Body::new(StreamBody::new(frames))))
    });
    tower::ServiceBuilder::new()
        .layer(ingress)
        .layer(TranscodeLayer::new(transcoder))
        .service(echo)
}

async fn call(method: &str, uri: &str, body: Option<&str>) -> (u16, Value) {
    let token = sign_hs256(SECRET, "7", None, std::time::Duration::from_secs(60)).unwrap();
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"));
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(Body::new(Full::new(Bytes::from(
            body.unwrap_or_default().to_string(),
        ))))
        .unwrap();
    let response = echo_stack().await.oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn body_field_and_multi_segment_variables() {
    let (status, echoed) = call(
        "PATCH",
        "/v1/shelves/3/books/9",
        Some(r#"{"id": 9, "title": "Dune"}"#),
    )
    .await;
    assert_eq!(status, 200, "{echoed}");
    assert_eq!(
        echoed,
        json!({"name": "shelves/3/books/9", "book": {"id": 9, "title": "Dune"}})
    );
}

#[tokio::test]
async fn additional_bindings_and_nested_path_fields() {
    let (status, echoed) = call(
        "PUT",
        "/v1/books/12",
        Some(r#"{"name": "n", "book": {"title": "Emma"}}"#),
    )
    .await;
    assert_eq!(status, 200, "{echoed}");
    assert_eq!(
        echoed,
        json!({"name": "n", "book": {"id": 12, "title": "Emma"}})
    );
    // The body may repeat the path's value, not contradict it.
    let (status, _) = call("PUT", "/v1/books/12", Some(r#"{"book": {"id": "12"}}"#)).await;
    assert_eq!(status, 200);
    let (status, err) = call("PUT", "/v1/books/12", Some(r#"{"book": {"id": 13}}"#)).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["details"][0]["field_violations"][0]["field"], "book.id");
}

#[tokio::test]
async fn query_parameters_fill_the_rest() {
    let (status, echoed) = call(
        "GET",
        "/v1/shelves/a%20b/books:search?page_size=5&tags=x&tags=y&filter.title=Emma&verbose=true",
        None,
    )
    .await;
    assert_eq!(status, 200, "{echoed}");
    assert_eq!(
        echoed,
        json!({"shelf": "a b", "page_size": 5, "tags": ["x", "y"], "filter": {"id": 0, "title": "Emma"}, "verbose": true})
    );
    for bad in [
        "?shelf=other",
        "?nope=1",
        "?verbose=yes",
        "?page_size=1.5",
        "?filter=1",
    ] {
        let (status, err) = call("GET", &format!("/v1/shelves/s/books:search{bad}"), None).await;
        assert_eq!(status, 400, "{bad}: {err}");
    }
    // The verb is part of the route.
    let (status, _) = call("GET", "/v1/shelves/s/books", None).await;
    assert_eq!(status, 404);
}
