//! Authentication: what each RPC needs, the check the ingress runs once per
//! request (before reading its body), and the layer in front of the routes
//! that turns its outcome into the handlers' principal, or into a gRPC
//! status with `WWW-Authenticate: Bearer` for a refused caller.

use std::convert::Infallible;

use http::{Request, Response};
use tonic::Status;
use tonic::body::Body;
use tower::Service;

use super::respond::{Protocol, respond};
use super::rpcs::Access;
use super::{BoxFuture, Middleware, MiddlewareLayer};

use crate::auth::{ADMIN_SCOPE, Authenticator, Principal};
use crate::error::Error;

/// The caller, as the auth layer put it into the request.
pub fn principal<T>(request: &tonic::Request<T>) -> Result<&Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .ok_or_else(|| Status::unauthenticated("missing bearer token"))
}

/// Gives the routes the caller the ingress authenticated, or refuses.
#[derive(Clone)]
pub struct Auth;

pub type AuthLayer = MiddlewareLayer<Auth>;

impl Default for AuthLayer {
    fn default() -> Self {
        MiddlewareLayer(Auth)
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
    access: Access,
) -> Result<Principal, Error> {
    let principal = auth.verify(bearer(headers)?).await?;
    match access {
        Access::Public => {}
        Access::User => {
            principal.user_id()?;
        }
        Access::Admin => {
            if !principal.has_scope(ADMIN_SCOPE) {
                return Err(Error::PermissionDenied(format!(
                    "this RPC needs the {ADMIN_SCOPE} scope"
                )));
            }
        }
    }
    Ok(principal)
}

/// What the ingress found of a request's caller, put into its extensions
/// (which can't come from the network), so the token is verified once and
/// every protocol layer refuses in its own shape.
#[derive(Clone, Debug)]
pub(crate) enum Caller {
    /// A public RPC: nobody was asked.
    Public,
    Known(Principal),
    /// Refused: `Error::Unauthenticated` or `Error::PermissionDenied`.
    Refused {
        denied: bool,
        message: String,
    },
}

impl Caller {
    /// Authenticates a caller of an RPC with this `access`, from the
    /// headers.
    pub(crate) async fn check(
        auth: &Authenticator,
        access: Access,
        headers: &http::HeaderMap,
    ) -> Self {
        match access {
            Access::Public => Self::Public,
            needed => match authenticate(auth, headers, needed).await {
                Ok(principal) => Self::Known(principal),
                Err(Error::PermissionDenied(message)) => Self::Refused {
                    denied: true,
                    message,
                },
                Err(err) => Self::Refused {
                    denied: false,
                    message: match err {
                        Error::Unauthenticated(message) => message,
                        other => other.to_string(),
                    },
                },
            },
        }
    }
}

/// The caller the ingress found: `None` for public RPCs. A request it did
/// not see (none reaches a protocol layer that way) has no caller.
pub(crate) fn caller(extensions: &http::Extensions) -> Result<Option<Principal>, Error> {
    match extensions.get::<Caller>() {
        Some(Caller::Public) => Ok(None),
        Some(Caller::Known(principal)) => Ok(Some(principal.clone())),
        Some(Caller::Refused {
            denied: true,
            message,
        }) => Err(Error::PermissionDenied(message.clone())),
        Some(Caller::Refused { message, .. }) => Err(Error::Unauthenticated(message.clone())),
        None => Err(Error::Unauthenticated("missing bearer token".into())),
    }
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
        // The ingress authenticated every request, and the requests the
        // protocol layers build in-process carry what it found.
        match caller(request.extensions()) {
            Ok(None) => {}
            Ok(Some(principal)) => {
                tracing::Span::current().record("enduser.id", principal.subject.as_str());
                request.extensions_mut().insert(principal);
            }
            Err(err) => {
                return Box::pin(async move {
                    super::drain(request.into_body()).await;
                    Ok(respond(Protocol::Grpc, &Status::from(err)))
                });
            }
        }
        Box::pin(inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
