//! Transport adapters: the auth layer and the gRPC services.

pub mod auth;
pub mod convert;
pub mod grpc;
pub mod rpc;
pub mod shed;
pub mod transcode;
