//! The integration suite, as one test binary: every module speaks to a real
//! server the way a client would. One binary links once (each linked test
//! binary is hundreds of megabytes in a debug build) and shares one
//! throwaway PostgreSQL cluster across all the store cases.
//!
//! `tests/tracing.rs` stays a binary of its own: it installs the
//! process-wide tracing subscriber.

#[path = "../common/mod.rs"]
#[macro_use]
mod common;

mod auth;
mod batched_creates;
mod browser;
mod buf_curl;
mod catalog;
mod compare;
mod connect;
mod conversation;
mod conversation_bounds;
mod conversation_crashes;
mod conversation_memory;
mod conversation_streams;
mod create_session;
mod deploy;
mod early_model_calls;
mod examples;
mod faults;
mod grpc_web;
mod hostile;
mod http_errors;
mod http_json;
mod http_surface;
mod idempotency;
mod ingress;
mod jwks_server;
mod limits;
mod model_stats;
mod node_clients;
mod nul_text;
mod request_rules;
mod scale_out;
mod schemathesis;
mod session_access;
mod sessions;
mod shutdown;
mod slow_bodies;
mod sqlite_wal;
mod store_contract;
mod tls;
mod transcode_fuzz;
mod usage_limits;
mod write_groups;
