//! The tower layers of the one port, outermost first as `startup` stacks
//! them: request ids and CORS (tower-http), [`health`] probes, [`shed`]
//! load shedding, the [`transcode`] HTTP/JSON layer, gRPC-Web (tonic-web),
//! the [`rpc`] span and deadline, and [`auth`]; then the tonic routes.
//!
//! Each is a `Layer` and a `Service` in tonic-web's shape. They share the
//! skeleton below: call the service that was polled ready, and answer with
//! a boxed future.

pub mod auth;
pub mod health;
pub mod rpc;
pub mod shed;
pub mod transcode;

use std::future::Future;
use std::pin::Pin;

/// The future every layer here answers with.
pub type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// The inner service to call: the one that was polled ready, leaving a fresh
/// clone behind for the next request (tower's `Service` contract: a clone
/// has not been polled ready, the original has).
pub fn take_ready<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    std::mem::replace(inner, clone)
}
