//! The RPC catalog: every RPC of the descriptor sets by gRPC path, with
//! the facts each layer acts on, read once at start-up from the proto: how
//! its messages flow (`stream`), whether it has side effects
//! (`idempotency_level`), and from the `practice.v1.rpc` and
//! `practice.v1.service` options who may call it and which deadline it
//! gets. Adding an RPC is writing it in the proto and implementing it.

use std::collections::HashMap;
use std::sync::Arc;

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
    /// Who may call it.
    pub access: Access,
    /// It waits for models: the prompt timeout, not the request timeout.
    pub prompt_deadline: bool,
    /// The request rules of the RPC's descriptor set.
    rules: Arc<Rules>,
}

/// Who may call an RPC (`practice.v1.Access`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Health and reflection.
    Public,
    /// A user RPC: `sub` must be a user id.
    User,
    /// An internal RPC: the `practice:admin` scope.
    Admin,
}

/// An RPC's `practice.v1` options, or its service's.
struct Facts {
    access: Option<Access>,
    prompt_deadline: bool,
}

impl Facts {
    fn of(method: &prost_reflect::MethodDescriptor) -> Result<Self, String> {
        let pool = method.parent_pool();
        let option = |options: DynamicMessage, name: &str, field: &str| {
            let ext = pool.get_extension_by_name(name)?;
            if !options.has_extension(&ext) {
                return None;
            }
            let facts = options.get_extension(&ext);
            facts
                .as_message()?
                .get_field_by_name(field)?
                .as_enum_number()
        };
        let access = option(method.options(), "practice.v1.rpc", "access")
            .filter(|n| *n != 0)
            .or_else(|| {
                option(
                    method.parent_service().options(),
                    "practice.v1.service",
                    "access",
                )
            })
            .map(|n| match n {
                1 => Ok(Access::Public),
                2 => Ok(Access::User),
                3 => Ok(Access::Admin),
                other => Err(format!("{}: unknown access {other}", method.full_name())),
            })
            .transpose()?;
        let deadline = option(method.options(), "practice.v1.rpc", "deadline");
        Ok(Self {
            access,
            prompt_deadline: deadline == Some(1),
        })
    }
}

impl Rpc {
    /// The request rules of the RPC's descriptor set.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// A canonical proto3 JSON request as a message (the validation layer
    /// checks it as it is). Unknown fields are ignored, as Connect's and
    /// gRPC-Web's own servers do.
    pub fn json_message(&self, bytes: &[u8]) -> Result<DynamicMessage, Status> {
        if super::validate::holds_too_many_json_values(bytes) {
            return Err(Status::invalid_argument(
                super::validate::too_many_json_values(),
            ));
        }
        if let Some(violation) = self.rules.oversized_json(&self.input, None, bytes) {
            return Err(Error::invalid(vec![violation]).into());
        }
        super::validate::message_built();
        let mut de = serde_json::Deserializer::from_slice(bytes);
        DynamicMessage::deserialize_with_options(
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
        })
    }

    /// A binary reply to canonical proto3 JSON.
    pub fn proto_to_json(&self, bytes: &[u8]) -> Result<Vec<u8>, Status> {
        let message = DynamicMessage::decode(self.output.clone(), bytes)
            .map_err(|_| Status::internal("the RPC reply could not be decoded"))?;
        serde_json::to_vec(&message).map_err(|_| Status::internal("the reply could not be written"))
    }
}

#[derive(Clone)]
pub struct Rpcs(Arc<Catalog>);

struct Catalog {
    by_path: HashMap<String, Arc<Rpc>>,
    /// Our descriptor set and its rules, read once: the HTTP routes and
    /// OpenAPI are built from the same.
    pool: DescriptorPool,
    rules: Arc<Rules>,
}

impl Rpcs {
    /// The RPCs of our encoded descriptor set, each of which must say who
    /// may call it, and of the public services' (health, reflection).
    pub fn new(ours: &[u8], public: &[&[u8]]) -> Result<Self, String> {
        let mut by_path = HashMap::new();
        let read = |set: &[u8]| -> Result<_, String> {
            let pool = DescriptorPool::decode(set).map_err(|e| e.to_string())?;
            let rules = Arc::new(Rules::from_pool(&pool)?);
            Ok((pool, rules))
        };
        let (pool, rules) = read(ours)?;
        Self::add(&pool, &rules, None, &mut by_path)?;
        for set in public {
            let (pool, rules) = read(set)?;
            Self::add(&pool, &rules, Some(Access::Public), &mut by_path)?;
        }
        Ok(Self(Arc::new(Catalog {
            by_path,
            pool,
            rules,
        })))
    }

    /// Our descriptor set, as read.
    pub fn pool(&self) -> &DescriptorPool {
        &self.0.pool
    }

    /// The request rules of our descriptor set.
    pub fn rules(&self) -> &Arc<Rules> {
        &self.0.rules
    }

    fn add(
        pool: &DescriptorPool,
        rules: &Arc<Rules>,
        default: Option<Access>,
        rpcs: &mut HashMap<String, Arc<Rpc>>,
    ) -> Result<(), String> {
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
                let facts = Facts::of(&method)?;
                let access = facts.access.or(default).ok_or_else(|| {
                    format!(
                        "{}: say who may call it with option (practice.v1.rpc).access \
                         or (practice.v1.service).access",
                        method.full_name()
                    )
                })?;
                rpcs.insert(
                    format!("/{}/{}", service.full_name(), method.name()),
                    Arc::new(Rpc {
                        shape,
                        input: method.input(),
                        output: method.output(),
                        no_side_effects,
                        access,
                        prompt_deadline: facts.prompt_deadline,
                        rules: rules.clone(),
                    }),
                );
            }
        }
        Ok(())
    }

    /// Who may call `rpc`, the RPC a path names: a path that names none
    /// needs a user, like any other.
    pub fn access(rpc: Option<&Arc<Rpc>>) -> Access {
        rpc.map_or(Access::User, |rpc| rpc.access)
    }

    /// The services that need a caller: the ones whose health follows the
    /// database's.
    pub fn guarded_services(&self) -> Vec<String> {
        let mut services: Vec<String> = self
            .0
            .by_path
            .iter()
            .filter(|(_, rpc)| rpc.access != Access::Public)
            .filter_map(|(path, _)| Some(path.strip_prefix('/')?.split_once('/')?.0.to_owned()))
            .collect();
        services.sort();
        services.dedup();
        services
    }

    /// The unary RPC at `path`, if there is one.
    pub fn unary(&self, path: &str) -> Option<&Arc<Rpc>> {
        self.get(path).filter(|r| r.shape == Shape::Unary)
    }

    pub fn get(&self, path: &str) -> Option<&Arc<Rpc>> {
        self.0.by_path.get(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::FILE_DESCRIPTOR_SET;

    #[test]
    fn the_catalog_reads_each_rpcs_facts_from_the_proto() {
        let rpcs = Rpcs::new(
            FILE_DESCRIPTOR_SET,
            &[tonic_health::pb::FILE_DESCRIPTOR_SET],
        )
        .unwrap();
        let rpc = |path: &str| rpcs.get(path).unwrap();
        let create = rpc("/practice.v1.PracticeService/CreateSession");
        assert_eq!(
            (create.access, create.prompt_deadline),
            (Access::User, false)
        );
        let prompt = rpc("/practice.v1.PracticeService/SendPrompt");
        assert_eq!(
            (prompt.shape, prompt.prompt_deadline),
            (Shape::ServerStream, true)
        );
        assert!(rpc("/practice.v1.PracticeService/GetSession").no_side_effects);
        assert_eq!(
            rpc("/practice.v1.CatalogService/UpsertClass").access,
            Access::Admin
        );
        let access = |path: &str| Rpcs::access(rpcs.get(path));
        assert_eq!(access("/grpc.health.v1.Health/Check"), Access::Public);
        assert_eq!(access("/unknown.Service/Method"), Access::User);
        assert_eq!(
            rpcs.guarded_services(),
            ["practice.v1.CatalogService", "practice.v1.PracticeService"]
        );
    }

    #[test]
    fn an_rpc_that_does_not_say_who_may_call_it_stops_the_start() {
        // The health service's own descriptors, taken as ours: no access.
        let err = Rpcs::new(tonic_health::pb::FILE_DESCRIPTOR_SET, &[])
            .err()
            .unwrap();
        assert!(err.contains("grpc.health.v1.Health.Check"), "{err}");
    }
}
