//! The RPCs of the descriptor sets, by gRPC path: what the layers that
//! decode messages themselves (Connect, gRPC-Web's JSON mode) need to know.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor};
use prost_types::method_options::IdempotencyLevel;
use tonic::Status;

use crate::api::validation::Rules;
use crate::error::Error;

/// How an RPC's messages flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Unary,
    /// One request message, a stream of replies.
    ServerStream,
    /// A stream of requests (client or bidirectional streaming).
    ClientStream,
}

/// One RPC.
pub struct Rpc {
    pub shape: Shape,
    pub input: MessageDescriptor,
    pub output: MessageDescriptor,
    /// `idempotency_level = NO_SIDE_EFFECTS`: may be called with GET.
    pub no_side_effects: bool,
    /// The request rules of the RPC's descriptor set.
    rules: Arc<Rules>,
}

impl Rpc {
    /// A canonical proto3 JSON request to its binary encoding. Unknown
    /// fields are ignored, as Connect's and gRPC-Web's own servers do.
    pub fn json_to_proto(&self, bytes: &[u8]) -> Result<Bytes, Status> {
        if super::validate::holds_too_many_json_values(bytes) {
            return Err(Status::invalid_argument(
                super::validate::too_many_json_values(),
            ));
        }
        if let Some(violation) = self.rules.oversized_json(&self.input, None, bytes) {
            return Err(Error::invalid(vec![violation]).into());
        }
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let message = DynamicMessage::deserialize_with_options(
            self.input.clone(),
            &mut de,
            &DeserializeOptions::new().deny_unknown_fields(false),
        )
        .and_then(|m| de.end().map(|()| m))
        .map_err(|e| {
            if super::validate::is_json_nesting_error(&e) {
                return Status::invalid_argument(super::validate::nested_too_deeply());
            }
            Status::invalid_argument(format!(
                "the JSON message is not a valid {}: {e}",
                self.input.name()
            ))
        })?;
        Ok(message.encode_to_vec().into())
    }

    /// A binary reply to canonical proto3 JSON.
    pub fn proto_to_json(&self, bytes: &[u8]) -> Result<Vec<u8>, Status> {
        let message = DynamicMessage::decode(self.output.clone(), bytes)
            .map_err(|_| Status::internal("the RPC reply could not be decoded"))?;
        serde_json::to_vec(&message).map_err(|_| Status::internal("the reply could not be written"))
    }
}

#[derive(Clone)]
pub struct Rpcs(Arc<HashMap<String, Rpc>>);

impl Rpcs {
    /// Every RPC of these encoded descriptor sets.
    pub fn from_descriptor_sets(sets: &[&[u8]]) -> Result<Self, String> {
        let mut rpcs = HashMap::new();
        for set in sets {
            let pool = DescriptorPool::decode(*set).map_err(|e| e.to_string())?;
            let rules = Arc::new(Rules::from_pool(&pool)?);
            Self::add(&pool, &rules, &mut rpcs);
        }
        Ok(Self(Arc::new(rpcs)))
    }

    fn add(pool: &DescriptorPool, rules: &Arc<Rules>, rpcs: &mut HashMap<String, Rpc>) {
        for service in pool.services() {
            for method in service.methods() {
                let shape = match (method.is_client_streaming(), method.is_server_streaming()) {
                    (false, false) => Shape::Unary,
                    (false, true) => Shape::ServerStream,
                    (true, _) => Shape::ClientStream,
                };
                let no_side_effects = method
                    .method_descriptor_proto()
                    .options
                    .as_ref()
                    .and_then(|o| o.idempotency_level)
                    == Some(IdempotencyLevel::NoSideEffects as i32);
                rpcs.insert(
                    format!("/{}/{}", service.full_name(), method.name()),
                    Rpc {
                        shape,
                        input: method.input(),
                        output: method.output(),
                        no_side_effects,
                        rules: rules.clone(),
                    },
                );
            }
        }
    }

    /// The unary RPC at `path`, if there is one.
    pub fn unary(&self, path: &str) -> Option<&Rpc> {
        self.get(path).filter(|r| r.shape == Shape::Unary)
    }

    pub fn get(&self, path: &str) -> Option<&Rpc> {
        self.0.get(path)
    }
}
