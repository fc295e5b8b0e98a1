//! The OpenAPI 3.1 document of every JSON route, generated at start-up from
//! the same descriptors the transcoder routes by, so it describes what the
//! routes really accept and send: responses list every field, nullable ones
//! as `[type, "null"]`; 64-bit integers are numbers out and numbers or
//! decimal strings in.

use std::collections::BTreeMap;

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value as Json, json};

use super::routes::{BodyRule, Route, Routes};
use super::schema_rules::{constrain, free_form_shape, int64_pattern, must_be_sent, nullable};
use crate::api::validation::Rules;

/// Which side of the wire a schema describes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Request,
    Response,
}

fn schema_name(m: &MessageDescriptor, side: Side) -> String {
    match side {
        Side::Response => m.full_name().to_owned(),
        Side::Request => format!("{}.Input", m.full_name()),
    }
}

struct Builder {
    schemas: BTreeMap<String, Json>,
    /// The request rules, published as JSON Schema keywords.
    rules: Rules,
}

impl Builder {
    fn scalar(&mut self, kind: &Kind, side: Side) -> Json {
        match kind {
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                json!({"type": "integer", "format": "int32", "minimum": i32::MIN, "maximum": i32::MAX})
            }
            Kind::Uint32 | Kind::Fixed32 => {
                json!({"type": "integer", "format": "uint32", "minimum": 0})
            }
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64 => {
                match side {
                    Side::Response => json!({"type": "integer", "format": "int64"}),
                    Side::Request => json!({
                        "type": ["integer", "string"], "format": "int64",
                        "pattern": int64_pattern(None),
                        "minimum": i64::MIN, "maximum": i64::MAX,
                    }),
                }
            }
            Kind::Double | Kind::Float => json!({"type": "number"}),
            Kind::Bool => json!({"type": "boolean"}),
            Kind::String => json!({"type": "string"}),
            Kind::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
            Kind::Enum(e) => {
                json!({"type": "string", "enum": e.values().map(|v| v.name().to_owned()).collect::<Vec<_>>()})
            }
            Kind::Message(m) => self.message_ref(m, side),
        }
    }

    fn message_ref(&mut self, m: &MessageDescriptor, side: Side) -> Json {
        match m.full_name() {
            "google.protobuf.Timestamp" => return json!({"type": "string", "format": "date-time"}),
            "google.protobuf.Duration" => {
                return json!({"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?s$"});
            }
            "google.protobuf.Struct" => {
                return json!({"type": "object", "additionalProperties": true});
            }
            "google.protobuf.Value" => return json!({}),
            "google.protobuf.ListValue" => return json!({"type": "array", "items": {}}),
            "google.protobuf.Empty" => {
                return json!({"type": "object", "additionalProperties": false});
            }
            _ => {}
        }
        let name = schema_name(m, side);
        if !self.schemas.contains_key(&name) {
            self.schemas.insert(name.clone(), Json::Null); // breaks cycles
            let schema = self.message(m, side, &[]);
            self.schemas.insert(name.clone(), schema);
        }
        json!({"$ref": format!("#/components/schemas/{name}")})
    }

    fn field(&mut self, f: &FieldDescriptor, side: Side) -> Json {
        let schema = if f.is_map() {
            let entry = f.kind();
            let value = entry
                .as_message()
                .map(|m| self.scalar(&m.map_entry_value_field().kind(), side))
                .unwrap_or_else(|| json!({}));
            json!({"type": "object", "additionalProperties": value})
        } else if f.is_list() {
            json!({"type": "array", "items": self.scalar(&f.kind(), side)})
        } else {
            self.scalar(&f.kind(), side)
        };
        let mut schema = schema;
        if side == Side::Request
            && let Some(shape) = free_form_shape(f)
        {
            return shape;
        }
        if side == Side::Request {
            let checks = self.rules.of(f).to_vec();
            constrain(&mut schema, &checks, &f.kind());
            // A required field can't be null (null means absent).
            if must_be_sent(f, &checks) {
                return schema;
            }
        }
        // In requests null means absent for every other field; in responses
        // only fields with presence may be null.
        if side == Side::Request || (f.supports_presence() && !f.is_list() && !f.is_map()) {
            nullable(schema)
        } else {
            schema
        }
    }

    /// A message's object schema, leaving out fields bound elsewhere.
    fn message(&mut self, m: &MessageDescriptor, side: Side, skip: &[String]) -> Json {
        let mut properties = Map::new();
        let mut required = Vec::new();
        for f in m.fields() {
            if skip.iter().any(|s| s == f.name()) {
                continue;
            }
            properties.insert(f.name().to_owned(), self.field(&f, side));
            if side == Side::Response || must_be_sent(&f, self.rules.of(&f)) {
                required.push(json!(f.name()));
            }
        }
        let mut schema =
            json!({"type": "object", "properties": properties, "additionalProperties": false});
        if !required.is_empty() {
            schema["required"] = Json::Array(required);
        }
        schema
    }

    /// A streaming route's answer: one event per message (see the
    /// transcoder's `sse` module for how events are named).
    fn events(&mut self, route: &Route) -> Json {
        let schema = self.message_ref(&route.output(), Side::Response);
        json!({
            "schema": {"type": "string"},
            "x-event-schema": schema,
        })
    }

    fn operation(&mut self, route: &Route) -> Json {
        let input = route.input();
        let path_fields: Vec<String> = route
            .template
            .variables()
            .map(|v| v.field_path.join("."))
            .collect();
        let mut parameters = Vec::new();
        for name in &path_fields {
            if let Some(f) = input.get_field_by_name(name) {
                let mut schema = self.scalar(&f.kind(), Side::Request);
                constrain(&mut schema, self.rules.of(&f), &f.kind());
                if f.name() == "page_token" {
                    // A page token is opaque: valid only as the server issued
                    // it, which no schema can say. The document allows the
                    // first page's (empty) one; any other value is one the
                    // server gave out, or refused.
                    schema = json!({
                        "type": "string", "pattern": "^$",
                        "description": "empty for the first page, then the previous page's next_page_token",
                    });
                }
                parameters
                    .push(json!({"name": name, "in": "path", "required": true, "schema": schema}));
            }
        }
        let mut operation = json!({
            "operationId": format!("{}_{}", route.rpc.parent_service().name(), route.rpc.name()),
            "tags": [route.rpc.parent_service().name()],
            "x-grpc-method": route.grpc_path,
            "security": [{"bearerAuth": []}],
        });
        match &route.body {
            BodyRule::Whole => {
                let name = format!("{}.Body", schema_name(&input, Side::Request));
                let schema = self.message(&input, Side::Request, &path_fields);
                // No body is an empty request: fine unless a field must be sent.
                let needs_body = schema.get("required").is_some();
                self.schemas.insert(name.clone(), schema);
                operation["requestBody"] = json!({
                    "required": needs_body,
                    "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}},
                });
            }
            BodyRule::Field(field) => {
                if let Some(f) = input.get_field_by_name(field) {
                    operation["requestBody"] = json!({
                        "required": true,
                        "content": {"application/json": {"schema": self.field(&f, Side::Request)}},
                    });
                }
            }
            BodyRule::None => {}
        }
        if route.body != BodyRule::Whole {
            for f in input.fields() {
                let bound = path_fields.iter().any(|p| p == f.name())
                    || matches!(&route.body, BodyRule::Field(b) if b == f.name());
                let is_message = matches!(f.kind(), Kind::Message(_));
                if bound || f.is_map() || is_message {
                    continue;
                }
                let mut schema = if f.is_list() {
                    json!({"type": "array", "items": self.scalar(&f.kind(), Side::Request)})
                } else {
                    self.scalar(&f.kind(), Side::Request)
                };
                constrain(&mut schema, self.rules.of(&f), &f.kind());
                if f.name() == "page_token" {
                    // A page token is opaque: valid only as the server issued
                    // it, which no schema can say. The document allows the
                    // first page's (empty) one; any other value is one the
                    // server gave out, or refused.
                    schema = json!({
                        "type": "string", "pattern": "^$",
                        "description": "empty for the first page, then the previous page's next_page_token",
                    });
                }
                parameters.push(
                    json!({"name": f.name(), "in": "query", "required": false, "schema": schema}),
                );
            }
        }
        if !parameters.is_empty() {
            operation["parameters"] = Json::Array(parameters);
        }
        let content = if route.streams {
            json!({"text/event-stream": self.events(route)})
        } else {
            json!({"application/json": {"schema": self.message_ref(&route.output(), Side::Response)}})
        };
        operation["responses"] = json!({
            "200": {"description": "OK", "content": content},
            "default": {"description": "An error: a google.rpc.Status", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/google.rpc.Status"}}}},
        });
        operation
    }
}

pub fn document(routes: &Routes, rules: Rules) -> Json {
    let mut builder = Builder {
        schemas: BTreeMap::new(),
        rules,
    };
    let mut paths: BTreeMap<String, Map<String, Json>> = BTreeMap::new();
    // Unary routes first: a streaming RPC that shares one adds its events to
    // that route's 200 answer.
    let (streams, unary): (Vec<&Route>, Vec<&Route>) = routes.iter().partition(|r| r.streams);
    for route in unary.into_iter().chain(streams) {
        let Some(path) = route.template.openapi_path() else {
            continue;
        };
        let ops = paths.entry(path).or_default();
        let method = route.method.as_str().to_ascii_lowercase();
        match ops.get_mut(&method) {
            Some(op) if route.streams => {
                op["responses"]["200"]["content"]["text/event-stream"] = builder.events(route);
                op["description"] = json!(format!(
                    "With `Accept: text/event-stream`, the events of {} as Server-Sent Events.",
                    route.rpc.name()
                ));
            }
            _ => {
                let op = builder.operation(route);
                ops.insert(method, op);
            }
        }
    }
    builder.schemas.insert(
        "google.rpc.Status".into(),
        json!({
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "integer", "format": "int32", "description": "A google.rpc.Code"},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {
                    "type": "object",
                    "required": ["@type"],
                    "properties": {
                        "@type": {"type": "string"},
                        "field_violations": {"type": "array", "items": {
                            "type": "object",
                            "required": ["field", "description"],
                            "properties": {"field": {"type": "string"}, "description": {"type": "string"}},
                        }},
                    },
                }},
            },
        }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "practice-service",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Practice chat sessions. Every route is also a gRPC method (see x-grpc-method).",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": builder.schemas,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::FILE_DESCRIPTOR_SET;

    #[test]
    fn documents_the_session_routes() {
        let pool = prost_reflect::DescriptorPool::decode(FILE_DESCRIPTOR_SET).unwrap();
        let rules = Rules::from_pool(&pool).unwrap();
        let doc = document(&Routes::from_pool(&pool).unwrap(), rules);
        assert_eq!(doc["openapi"], "3.1.0");
        let post = &doc["paths"]["/user/practice/sessions"]["post"];
        assert_eq!(post["operationId"], "PracticeService_CreateSession");
        let get = &doc["paths"]["/user/practice/sessions/{session_id}"]["get"];
        assert_eq!(get["parameters"][0]["in"], "path");
        let session = &doc["components"]["schemas"]["practice.v1.Session"];
        assert_eq!(
            session["properties"]["class_id"]["type"],
            json!(["integer", "null"])
        );
        assert_eq!(session["properties"]["session_id"]["type"], "integer");
        assert_eq!(session["required"].as_array().unwrap().len(), 14);
        let body = &doc["components"]["schemas"]["practice.v1.CreateSessionRequest.Input.Body"];
        assert!(
            body["properties"]["knowledge_ids"]["type"]
                .as_array()
                .unwrap()
                .contains(&json!("null"))
        );
        // Unique ids are offered as numbers only: "1" and 1 would be two
        // items to JSON Schema and one to the server.
        let ids = &body["properties"]["knowledge_ids"];
        assert_eq!(ids["uniqueItems"], true);
        assert_eq!(ids["items"]["type"], "integer");
        let project = &body["properties"]["project_id"]["type"];
        assert_eq!(project, &json!(["integer", "string", "null"]));
    }
}
