//! The route table, read at start-up from every method's `google.api.http`
//! rule (with its `additional_bindings`) in the descriptor set.

use http::Method;
use prost_reflect::{DescriptorPool, MessageDescriptor, MethodDescriptor, Value};

use super::template::{Captures, Template};
use crate::proto::google::api::{HttpRule, http_rule::Pattern};

/// Where the request body goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyRule {
    /// No body; every non-path field comes from the query.
    None,
    /// `body: "*"`: the body is the whole request message.
    Whole,
    /// `body: "field"`: the body is that field; the rest from the query.
    Field(String),
}

#[derive(Debug, Clone)]
pub struct Route {
    pub method: Method,
    pub template: Template,
    pub body: BodyRule,
    /// The gRPC path, e.g. `/practice.v1.PracticeService/CreateSession`.
    pub grpc_path: String,
    pub rpc: MethodDescriptor,
    /// A server-streaming RPC: its reply is Server-Sent Events.
    pub streams: bool,
}

impl Route {
    pub fn input(&self) -> MessageDescriptor {
        self.rpc.input()
    }

    pub fn output(&self) -> MessageDescriptor {
        self.rpc.output()
    }
}

pub struct Routes {
    routes: Vec<Route>,
}

/// What a request's method and path found.
pub enum Lookup<'a> {
    Found(&'a Route, Captures),
    /// The path is known, the method isn't: these are the allowed ones.
    WrongMethod(Vec<Method>),
    NotFound,
}

fn binding(rule: &HttpRule, rpc: &MethodDescriptor) -> Result<Route, String> {
    let (method, path) = match rule.pattern.as_ref() {
        Some(Pattern::Get(p)) => (Method::GET, p.clone()),
        Some(Pattern::Put(p)) => (Method::PUT, p.clone()),
        Some(Pattern::Post(p)) => (Method::POST, p.clone()),
        Some(Pattern::Delete(p)) => (Method::DELETE, p.clone()),
        Some(Pattern::Patch(p)) => (Method::PATCH, p.clone()),
        Some(Pattern::Custom(c)) => (
            Method::from_bytes(c.kind.as_bytes())
                .map_err(|e| format!("{}: {e}", rpc.full_name()))?,
            c.path.clone(),
        ),
        None => return Err(format!("{}: http rule without a pattern", rpc.full_name())),
    };
    if rpc.is_client_streaming() {
        return Err(format!(
            "{}: a client-streaming RPC can't have an HTTP rule",
            rpc.full_name()
        ));
    }
    let template = Template::parse(&path).map_err(|e| format!("{}: {e}", rpc.full_name()))?;
    let input = rpc.input();
    for v in template.variables() {
        if !field_path_exists(&input, &v.field_path) {
            return Err(format!(
                "{}: path variable {:?} names no field",
                rpc.full_name(),
                v.field_path.join(".")
            ));
        }
    }
    let body = match rule.body.as_str() {
        "" => BodyRule::None,
        "*" => BodyRule::Whole,
        field if input.get_field_by_name(field).is_some() => BodyRule::Field(field.to_owned()),
        field => {
            return Err(format!(
                "{}: body field {field:?} does not exist",
                rpc.full_name()
            ));
        }
    };
    Ok(Route {
        method,
        template,
        body,
        grpc_path: format!("/{}/{}", rpc.parent_service().full_name(), rpc.name()),
        rpc: rpc.clone(),
        streams: rpc.is_server_streaming(),
    })
}

fn field_path_exists(message: &MessageDescriptor, path: &[String]) -> bool {
    let mut current = message.clone();
    for (i, name) in path.iter().enumerate() {
        let Some(field) = current.get_field_by_name(name) else {
            return false;
        };
        if i + 1 < path.len() {
            match field.kind().as_message() {
                Some(m) => current = m.clone(),
                None => return false,
            }
        }
    }
    true
}

impl Routes {
    /// Reads every method's HTTP rule from the pool.
    pub fn from_pool(pool: &DescriptorPool) -> Result<Self, String> {
        let ext = pool
            .get_extension_by_name("google.api.http")
            .ok_or("the descriptor set lacks google.api.http")?;
        let mut routes = Vec::new();
        for service in pool.services() {
            for rpc in service.methods() {
                let options = rpc.options();
                if !options.has_extension(&ext) {
                    continue;
                }
                let Value::Message(rule) = options.get_extension(&ext).into_owned() else {
                    continue;
                };
                let rule: HttpRule = rule
                    .transcode_to()
                    .map_err(|e| format!("{}: bad http rule: {e}", rpc.full_name()))?;
                routes.push(binding(&rule, &rpc)?);
                for extra in &rule.additional_bindings {
                    routes.push(binding(extra, &rpc)?);
                }
            }
        }
        Ok(Routes { routes })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    /// The route for a request. Two RPCs may share a route when one of them
    /// streams: a client that asks for events (`wants_events`) gets the
    /// streaming one, any other client the other.
    pub fn lookup(&self, method: &Method, path: &str, wants_events: bool) -> Lookup<'_> {
        // Routes of the request's method first: the usual request decodes
        // the path only against those; the rest are tried only to tell a
        // 405 from a 404.
        let mut of_method = self.routes.iter().filter(|r| r.method == *method);
        if let Some((route, captures)) =
            of_method.find_map(|r| r.template.matches(path).map(|c| (r, c)))
        {
            let twin = self.routes.iter().find(|r| {
                r.method == *method && r.template == route.template && r.streams == wants_events
            });
            return Lookup::Found(twin.unwrap_or(route), captures);
        }
        let allowed: Vec<Method> = self
            .routes
            .iter()
            .filter(|r| r.method != *method && r.template.matches(path).is_some())
            .map(|r| r.method.clone())
            .collect();
        if allowed.is_empty() {
            Lookup::NotFound
        } else {
            Lookup::WrongMethod(allowed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::FILE_DESCRIPTOR_SET;

    #[test]
    fn reads_the_practice_routes() {
        let pool = DescriptorPool::decode(FILE_DESCRIPTOR_SET).unwrap();
        let routes = Routes::from_pool(&pool).unwrap();
        match routes.lookup(&Method::POST, "/user/practice/sessions", false) {
            Lookup::Found(r, caps) => {
                assert_eq!(r.grpc_path, "/practice.v1.PracticeService/CreateSession");
                assert_eq!(r.body, BodyRule::Whole);
                assert!(caps.is_empty());
            }
            _ => panic!("CreateSession route"),
        }
        match routes.lookup(&Method::GET, "/user/practice/sessions/5", false) {
            Lookup::Found(r, caps) => {
                assert_eq!(r.grpc_path, "/practice.v1.PracticeService/GetSession");
                assert_eq!(
                    caps,
                    vec![(vec!["session_id".to_string()], "5".to_string())]
                );
            }
            _ => panic!("GetSession route"),
        }
        assert!(
            matches!(routes.lookup(&Method::PUT, "/user/practice/sessions", false), Lookup::WrongMethod(m) if m == [Method::POST, Method::GET])
        );
        assert!(matches!(
            routes.lookup(&Method::GET, "/nope", false),
            Lookup::NotFound
        ));
        // One route, two RPCs: the client's Accept picks.
        for (events, rpc) in [(true, "SendPrompt"), (false, "SendPromptAndWait")] {
            match routes.lookup(&Method::POST, "/user/practice/sessions/3/prompts", events) {
                Lookup::Found(r, _) => assert!(r.grpc_path.ends_with(&format!("/{rpc}"))),
                _ => panic!("prompt route"),
            }
        }
    }
}
