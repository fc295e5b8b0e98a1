//! practice-service: practice chat sessions over gRPC, gRPC-Web and HTTP/JSON.

pub mod api;
pub mod auth;
pub mod config;
pub mod connections;
pub mod domain;
pub mod error;
pub mod llm;
pub mod proto;
pub mod service;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tls;
