//! The rules read from the protos, checked on decoded and encoded messages.

use super::*;
use crate::proto::FILE_DESCRIPTOR_SET;
use crate::proto::practice::v1 as pb;
use prost::Message as _;

fn rules() -> (DescriptorPool, Rules) {
    let pool = DescriptorPool::decode(FILE_DESCRIPTOR_SET).unwrap();
    let rules = Rules::from_pool(&pool).unwrap();
    (pool, rules)
}

/// `m`, a `name`, checked as the validation layer checks it.
fn checked(
    pool: &DescriptorPool,
    rules: &Rules,
    m: &impl prost::Message,
    name: &str,
) -> Vec<FieldViolation> {
    let desc = pool.get_message_by_name(name).unwrap();
    let msg = DynamicMessage::decode(desc, &m.encode_to_vec()[..]).unwrap();
    rules.check(&msg, 20)
}

/// The fields of `checked`'s violations.
fn violations(
    pool: &DescriptorPool,
    rules: &Rules,
    m: &impl prost::Message,
    name: &str,
) -> Vec<String> {
    checked(pool, rules, m, name)
        .into_iter()
        .map(|v| v.field)
        .collect()
}

#[test]
fn the_protos_rules_are_read_and_checked() {
    let (pool, rules) = rules();
    let create = pb::CreateSessionRequest {
        class_id: Some(0),
        knowledge_ids: vec![1, 0, 1],
        title: Some("a\nb".into()),
        ..Default::default()
    };
    assert_eq!(
        violations(&pool, &rules, &create, "practice.v1.CreateSessionRequest"),
        ["class_id", "knowledge_ids[2]", "knowledge_ids[1]", "title"]
    );
    // Unset optional fields are not checked; set ones are.
    let fine = pb::CreateSessionRequest::default();
    assert!(violations(&pool, &rules, &fine, "practice.v1.CreateSessionRequest").is_empty());
    // Required texts are checked even when empty; nested messages too.
    let class = pb::Class {
        class_id: 1,
        name: " ".into(),
        members: vec![pb::ClassMember {
            user_id: 0,
            role: "student".into(),
        }],
        models: vec![],
    };
    assert_eq!(
        violations(&pool, &rules, &class, "practice.v1.Class"),
        ["name", "members[0].user_id"]
    );
    let prompt = pb::SendPromptRequest {
        session_id: 1,
        prompt_text: "x".repeat(32_001),
        session_model_ids: vec![],
    };
    assert_eq!(
        violations(&pool, &rules, &prompt, "practice.v1.SendPromptRequest"),
        ["prompt_text"]
    );
}

#[test]
fn text_with_nul_is_refused_in_words() {
    let (pool, rules) = rules();
    let check = |input: &str| {
        let example = pb::CreateExampleRequest {
            input_text: input.into(),
            output_text: "out".into(),
            ..Default::default()
        };
        checked(&pool, &rules, &example, "practice.v1.CreateExampleRequest")
            .into_iter()
            .map(|v| format!("{}: {}", v.field, v.description))
            .collect::<Vec<_>>()
    };
    assert!(check("line one\nline two").is_empty());
    assert_eq!(check("a\0b"), ["input_text: must not contain U+0000 (NUL)"]);
}

#[test]
fn violations_stop_at_the_limit() {
    let (pool, rules) = rules();
    let desc = pool
        .get_message_by_name("practice.v1.CreateSessionRequest")
        .unwrap();
    let check = |ids: Vec<i64>| {
        let create = pb::CreateSessionRequest {
            knowledge_ids: ids,
            ..Default::default()
        };
        let msg = DynamicMessage::decode(desc.clone(), &create.encode_to_vec()[..]).unwrap();
        rules.check(&msg, 21)
    };
    // 50 zeros: 99 violations, 21 found.
    assert_eq!(check(vec![0; 50]).len(), 21);
    // Past the size limit, only that is reported: the items aren't
    // looked at, however many there are.
    let too_many = check((1..=200_000).collect());
    assert_eq!(too_many.len(), 1);
    assert_eq!(too_many[0].field, "knowledge_ids");
}

#[test]
fn oversized_lists_are_found_on_the_wire_as_the_decoded_check_finds_them() {
    let (pool, rules) = rules();
    let on_wire = |m: &dyn Fn() -> Vec<u8>, name: &str| {
        let desc = pool.get_message_by_name(name).unwrap();
        let bytes = m();
        let decoded = DynamicMessage::decode(desc.clone(), &bytes[..]).unwrap();
        let found = rules.oversized_list(&desc, &bytes);
        // Found on the wire: the same words as the decoded check's.
        if let Some(v) = &found {
            let checked = &rules.check(&decoded, 1)[0];
            assert_eq!(
                (&v.field, &v.description),
                (&checked.field, &checked.description)
            );
        }
        found.map(|v| format!("{}: {}", v.field, v.description))
    };
    let create = |ids: Vec<i64>| {
        move || {
            pb::CreateSessionRequest {
                title: Some("t".into()),
                knowledge_ids: ids.clone(),
                ..Default::default()
            }
            .encode_to_vec()
        }
    };
    let name = "practice.v1.CreateSessionRequest";
    // Packed, with items of several widths.
    assert_eq!(on_wire(&create(vec![1; 50]), name), None);
    assert_eq!(
        on_wire(&create(vec![i64::MAX; 51]), name).as_deref(),
        Some("knowledge_ids: at most 50 items, got 51")
    );
    // The same list as one record per item (a valid encoding too),
    // and split over two packed records: items are counted over all.
    let mut unpacked = Vec::new();
    for _ in 0..51 {
        unpacked.extend([3 << 3, 7]);
    }
    let mut two_runs = create(vec![7; 30])();
    two_runs.extend(create(vec![7; 30])());
    for bytes in [unpacked, two_runs] {
        let desc = pool.get_message_by_name(name).unwrap();
        let v = rules.oversized_list(&desc, &bytes).unwrap();
        assert_eq!(v.field, "knowledge_ids");
    }
    // Lists of messages count records.
    let class = |members: usize| {
        move || {
            pb::Class {
                class_id: 1,
                name: "c".into(),
                members: vec![pb::ClassMember::default(); members],
                models: vec![],
            }
            .encode_to_vec()
        }
    };
    assert_eq!(on_wire(&class(10_000), "practice.v1.Class"), None);
    assert_eq!(
        on_wire(&class(10_001), "practice.v1.Class").as_deref(),
        Some("members: at most 10000 items, got 10001")
    );
    // What can't be scanned is left to the decoder.
    let desc = pool.get_message_by_name(name).unwrap();
    assert!(rules.oversized_list(&desc, &[0x1a, 0xff]).is_none());
}

#[test]
fn an_unknown_rule_stops_the_start() {
    let (pool, _) = rules();
    let ext = pool.get_extension_by_name("buf.validate.field").unwrap();
    let field_rules = pool.get_message_by_name("buf.validate.FieldRules").unwrap();
    let mut m = DynamicMessage::new(field_rules);
    let double = m.descriptor().get_field_by_name("double").unwrap();
    m.set_field(
        &double,
        Value::Message(DynamicMessage::new(
            double.kind().as_message().unwrap().clone(),
        )),
    );
    assert!(read_rules(&m).is_err());
    let _ = ext;
}

/// UpdateSession's free-form title and notes take CreateSession's rules
/// (`string_or_null`): a string meets them, null and absent pass, any
/// other kind is refused.
#[test]
fn free_form_text_takes_the_named_fields_rules() {
    use prost_types::value::Kind;
    let (pool, rules) = rules();
    let text = |s: &str| {
        Some(prost_types::Value {
            kind: Some(Kind::StringValue(s.into())),
        })
    };
    let update = |title, notes| pb::UpdateSessionRequest {
        session_id: 1,
        title,
        notes,
    };
    let name = "practice.v1.UpdateSessionRequest";
    let found = checked(
        &pool,
        &rules,
        &update(text(&"x".repeat(201)), text("a\0b")),
        name,
    );
    let said: Vec<_> = found
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect();
    assert_eq!(
        said,
        [
            "title: at most 200 characters, got 201",
            "notes: must not contain U+0000 (NUL)"
        ]
    );
    let null = Some(prost_types::Value {
        kind: Some(Kind::NullValue(0)),
    });
    assert!(violations(&pool, &rules, &update(null, None), name).is_empty());
    assert!(violations(&pool, &rules, &update(text("fine"), text("a\nb")), name).is_empty());
    let number = Some(prost_types::Value {
        kind: Some(Kind::NumberValue(5.0)),
    });
    assert_eq!(
        checked(&pool, &rules, &update(None, number), name)[0].description,
        "must be a string or null"
    );
}

/// `string_or_null` on anything but a `Value`, or naming anything but a
/// string field, stops the start: a misdeclared rule is never skipped.
#[test]
fn a_misdeclared_shared_rule_stops_the_start() {
    struct One(&'static str);
    impl protox::file::FileResolver for One {
        fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
            if name == "t.proto" {
                return protox::file::File::from_source(name, self.0);
            }
            let mut chain = protox::file::ChainFileResolver::new();
            chain.add(protox::file::IncludeFileResolver::new(
                concat!(env!("CARGO_MANIFEST_DIR"), "/proto").into(),
            ));
            chain.add(protox::file::GoogleFileResolver::new());
            chain.open_file(name)
        }
    }
    let start = |field: &str| {
        let source = format!(
            "syntax = \"proto3\"; package t; import \"google/protobuf/struct.proto\"; \
             import \"practice/v1/rules.proto\"; \
             message M {{ string s = 1; int64 n = 2; {field} }}"
        );
        let mut compiler = protox::Compiler::with_file_resolver(One(Box::leak(source.into())));
        compiler
            .include_imports(true)
            .open_files(["t.proto"])
            .unwrap();
        let pool =
            DescriptorPool::decode(compiler.encode_file_descriptor_set().as_slice()).unwrap();
        Rules::from_pool(&pool)
    };
    assert!(
        start(r#"google.protobuf.Value v = 3 [(practice.v1.string_or_null) = "t.M.s"];"#).is_ok()
    );
    for wrong in [
        r#"google.protobuf.Value v = 3 [(practice.v1.string_or_null) = "t.M.n"];"#,
        r#"google.protobuf.Value v = 3 [(practice.v1.string_or_null) = "t.M.missing"];"#,
        r#"string v = 3 [(practice.v1.string_or_null) = "t.M.s"];"#,
    ] {
        assert!(start(wrong).is_err(), "{wrong}");
    }
}
