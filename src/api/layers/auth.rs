//! The authentication layer: one check at the gRPC level, for every
//! protocol (the JSON transcoder and gRPC-Web reach the routes through it).
//!
//! It reads only the headers: a request that fails is answered before its
//! body is read, as a gRPC status (`Status::into_http`) with
//! `WWW-Authenticate: Bearer`, so gRPC clients get a real status.

use std::convert::Infallible;
use std::sync::Arc;

use http::{HeaderValue, Request, Response};
use tonic::Status;
use tonic::body::Body;
use tower::Service;

use super::{BoxFuture, Middleware, MiddlewareLayer};

use crate::auth::{ADMIN_SCOPE, Authenticator, Principal};
use crate::error::Error;

/// What a path needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    /// Health and reflection.
    Public,
    /// A user RPC: `sub` must be a user id.
    User,
    /// An internal RPC: the `practice:admin` scope.
    Admin,
}

pub(crate) fn policy(path: &str) -> Policy {
    if path.starts_with("/grpc.health.v1.Health/")
        || path.starts_with("/grpc.reflection.v1.ServerReflection/")
        || path.starts_with("/grpc.reflection.v1alpha.ServerReflection/")
    {
        Policy::Public
    } else if path.starts_with("/practice.v1.CatalogService/") {
        Policy::Admin
    } else {
        // Everything else, including unknown paths, needs a user token.
        Policy::User
    }
}

/// The caller, as the auth layer put it into the request.
pub fn principal<T>(request: &tonic::Request<T>) -> Result<&Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .ok_or_else(|| Status::unauthenticated("missing bearer token"))
}

/// Authenticates every RPC that needs it, from the headers alone.
#[derive(Clone)]
pub struct Auth {
    auth: Arc<Authenticator>,
}

pub type AuthLayer = MiddlewareLayer<Auth>;

impl AuthLayer {
    pub fn new(auth: Arc<Authenticator>) -> Self {
        MiddlewareLayer(Auth { auth })
    }
}

/// The bearer token of a request, if it has a well-formed one.
fn bearer(headers: &http::HeaderMap) -> Result<&str, Error> {
    let value = headers.get(http::header::AUTHORIZATION).ok_or_else(|| {
        Error::Unauthenticated("missing bearer token: send Authorization: Bearer <JWT>".into())
    })?;
    let value = value
        .to_str()
        .map_err(|_| Error::Unauthenticated("the Authorization header is not valid text".into()))?;
    let (scheme, token) = value.split_once(' ').ok_or_else(|| {
        Error::Unauthenticated("the Authorization header must be Bearer <JWT>".into())
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(Error::Unauthenticated(
            "the Authorization header must be Bearer <JWT>".into(),
        ));
    }
    Ok(token.trim())
}

pub(crate) async fn authenticate(
    auth: &Authenticator,
    headers: &http::HeaderMap,
    policy: Policy,
) -> Result<Principal, Error> {
    let principal = auth.verify(bearer(headers)?).await?;
    match policy {
        Policy::Public => {}
        Policy::User => {
            principal.user_id()?;
        }
        Policy::Admin => {
            if !principal.has_scope(ADMIN_SCOPE) {
                return Err(Error::PermissionDenied(format!(
                    "this RPC needs the {ADMIN_SCOPE} scope"
                )));
            }
        }
    }
    Ok(principal)
}

/// Does the request carry a token this server accepts (whatever the path
/// needs)? For layers that only decide how much to trust a request.
pub(crate) async fn has_valid_token(auth: &Authenticator, headers: &http::HeaderMap) -> bool {
    match bearer(headers) {
        Ok(token) => auth.verify(token).await.is_ok(),
        Err(_) => false,
    }
}

/// The authenticated caller of `path` for a layer that reads the body itself
/// (so it authenticates first); `None` for public RPCs.
pub(crate) async fn caller(
    auth: &Authenticator,
    path: &str,
    headers: &http::HeaderMap,
) -> Result<Option<Principal>, Status> {
    match policy(path) {
        Policy::Public => Ok(None),
        route_policy => authenticate(auth, headers, route_policy)
            .await
            .map(Some)
            .map_err(Status::from),
    }
}

pub(crate) fn refusal<B: Default>(err: Error) -> Response<B> {
    let unauthenticated = err.code() == tonic::Code::Unauthenticated;
    let mut response = Status::from(err).into_http::<B>();
    if unauthenticated {
        response.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer"),
        );
    }
    response
}

impl Middleware for Auth {
    fn call<S>(
        &self,
        mut inner: S,
        mut request: Request<Body>,
    ) -> BoxFuture<Response<Body>, Infallible>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Send + 'static,
        S::Future: Send + 'static,
    {
        let policy = policy(request.uri().path());
        // Public paths need nothing; a request the JSON transcoder built
        // in-process was authenticated there, before its body was read, by
        // this same `authenticate` (extensions can't come from the network).
        if policy == Policy::Public {
            return Box::pin(inner.call(request));
        }
        if let Some(principal) = request.extensions().get::<Principal>() {
            tracing::Span::current().record("enduser.id", principal.subject.as_str());
            return Box::pin(inner.call(request));
        }
        let auth = self.auth.clone();
        Box::pin(async move {
            match authenticate(&auth, request.headers(), policy).await {
                Ok(principal) => {
                    tracing::Span::current().record("enduser.id", principal.subject.as_str());
                    request.extensions_mut().insert(principal);
                    inner.call(request).await
                }
                Err(err) => {
                    super::drain(request.into_body()).await;
                    Ok(refusal(err))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_get_their_policy() {
        assert_eq!(policy("/grpc.health.v1.Health/Check"), Policy::Public);
        assert_eq!(
            policy("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            Policy::Public
        );
        assert_eq!(
            policy("/practice.v1.PracticeService/CreateSession"),
            Policy::User
        );
        assert_eq!(
            policy("/practice.v1.CatalogService/UpsertClass"),
            Policy::Admin
        );
        assert_eq!(policy("/grpc.health.v1.HealthX/Check"), Policy::User);
        assert_eq!(policy("/unknown"), Policy::User);
    }

    #[test]
    fn bearer_parsing() {
        let mut h = http::HeaderMap::new();
        assert!(bearer(&h).is_err());
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert!(bearer(&h).is_err());
        h.insert("authorization", "Bearer ".parse().unwrap());
        assert!(bearer(&h).is_err());
        h.insert("authorization", "bearer abc.def.ghi".parse().unwrap());
        assert_eq!(bearer(&h).unwrap(), "abc.def.ghi");
    }
}
