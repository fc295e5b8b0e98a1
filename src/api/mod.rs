//! Transport adapters: the tower layers of the one port, the gRPC services,
//! and the conversions between proto messages and domain types.

pub mod convert;
pub mod grpc;
pub mod layers;
pub mod validation;
