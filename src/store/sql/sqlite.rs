//! SQLite's own SQL: what differs from the shared statements in `super`
//! (a list of ids is a JSON array; a new session's rows are written through
//! a view's trigger), and the multi-statement calls that send several
//! statements to the connection's thread at once.

use super::params_shifted;

/// The visible references (`sql::visible_refs`), `$5` a JSON array of ids.
static VISIBLE_REFS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    super::visible_refs("k.knowledge_id IN (SELECT value FROM json_each($5))")
});

pub(in crate::store) const EXAMPLE_OWNERS: &str = "\
SELECT example_id, user_id FROM examples
WHERE example_id IN (SELECT value FROM json_each($1)) AND deleted_at IS NULL";

/// The agent and the visible references, two statements sent as one: each
/// call is a hop to the connection's thread and back, which costs more
/// than either query.
pub(in crate::store) static REFERENCES: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("{};\n{}", super::AGENT_WITH_EXAMPLES, *VISIBLE_REFS));

/// One INSERT into the `new_sessions` view writes every row of a new session
/// (its trigger is in migrations/sqlite/0002), then a SELECT reads the ids
/// it gave the rows: the largest in each table, since the transaction still
/// holds the write lock. Links and models come as JSON arrays of
/// `[sort_order, id]`. Both statements go as one call to the connection's
/// thread, instead of one per row.
pub(in crate::store) const INSERT_SESSION: &str = "\
INSERT INTO new_sessions (user_id, class_id, project_id, agent_id, title, notes, created_at,
                          knowledge_ids, style_preset, style_params, generation_params,
                          agent_snapshot, example_ids, model_names, idem_key)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15);
SELECT s.session_id, st.setting_id,
       (SELECT json_group_array(json_array(l.sort_order, l.id)) FROM few_shot_links l
        WHERE l.setting_id = st.setting_id) AS link_ids,
       (SELECT json_group_array(json_array(m.sort_order, m.session_model_id)) FROM session_models m
        WHERE m.session_id = s.session_id) AS model_ids
FROM (SELECT max(session_id) AS session_id FROM practice_sessions) s,
     (SELECT max(setting_id) AS setting_id FROM session_settings) st";

/// `INSERT_SESSION` that first begins a group member's savepoint.
pub(in crate::store) static SAVEPOINT_THEN_INSERT_SESSION: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("SAVEPOINT member;\n{INSERT_SESSION}"));

/// `REFERENCES` read again (its parameters `$1` to `$5`), then
/// `INSERT_SESSION` (`$6` on): for references first read outside the write
/// transaction, checked in the same call as the write they decided.
pub(in crate::store) static RECHECK_THEN_INSERT_SESSION: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("{};\n{}", *REFERENCES, params_shifted(INSERT_SESSION, 5)));

/// `RECHECK_THEN_INSERT_SESSION` with a group member's savepoint begun
/// before the insert.
pub(in crate::store) static RECHECK_SAVEPOINT_THEN_INSERT_SESSION: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| {
        format!(
            "{};\nSAVEPOINT member;\n{}",
            *REFERENCES,
            params_shifted(INSERT_SESSION, 5)
        )
    });

/// A prompt of the session `$1` if the caller (`$2`) owns it, and its
/// responses in progress (the models in `$5`, a JSON array of
/// `[session_model_id, model_name]`), all in one call; then the ids, as
/// `[session_model_id, response_id]` pairs, and how many responses were
/// written (none: the session is not the caller's). The prompt is the
/// newest (the transaction holds the write lock); the responses read its
/// id from the insert before them, once (`MATERIALIZED`), before they
/// write rows of their own. An idempotency key (`$8`, or NULL) is linked
/// to it.
pub(in crate::store) const INSERT_PROMPT: &str = "\
INSERT INTO prompts (session_id, prompt_text, created_at)
SELECT session_id, $3, $4 FROM practice_sessions WHERE session_id = $1 AND user_id = $2;
WITH p AS MATERIALIZED (SELECT last_insert_rowid() AS prompt_id WHERE changes() = 1)
INSERT INTO responses
    (prompt_id, session_model_id, session_id, model_name, prompt_text, response_text,
     created_at, status, replica_id, text_chars)
SELECT p.prompt_id, m.value ->> 0, $1, m.value ->> 1, $3, '', $4, 'in_progress', $6, $7
FROM p, json_each($5) m ORDER BY m.key;
SELECT changes() AS written, (SELECT max(prompt_id) FROM prompts) AS prompt_id,
       (SELECT json_group_array(json_array(r.session_model_id, r.response_id)) FROM responses r
        WHERE r.prompt_id = (SELECT max(prompt_id) FROM prompts)) AS response_ids;
UPDATE idempotency_keys SET prompt_id = (SELECT max(prompt_id) FROM prompts)
WHERE user_id = $2 AND idem_key = $8";

/// A session's own rows (`Dialect::session_core`), five statements sent as
/// one call: `$1` the session, `$2` its owner. Each statement's rows are
/// told apart by their first column.
pub(in crate::store) static SESSION_CORE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| {
        [
            super::SESSION,
            super::SESSION_KNOWLEDGE,
            super::SESSION_SETTINGS,
            super::FEW_SHOT_LINKS,
            super::SESSION_MODELS,
        ]
        .join(";\n")
    });

/// `Dialect::finish_answer`: the end, how many rows it changed, then the
/// charge (run by `fetch_all`: a fetch of one row would stop before it).
pub(in crate::store) static FINISH_ANSWER: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| {
        format!(
            "{};\nSELECT changes();\n{}",
            super::FINISH_RESPONSE,
            params_shifted(super::CHARGE_USAGE, 9)
        )
    });

/// `FINISH_ANSWER` that first begins a group member's savepoint.
pub(in crate::store) static SAVEPOINT_THEN_FINISH_ANSWER: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("SAVEPOINT member;\n{}", *FINISH_ANSWER));

/// `Dialect::insert_sessions` for `n` creates: for each, `REFERENCES` read
/// again and `INSERT_SESSION` in a savepoint named by its place, each
/// create's parameters after the one before's (20 a create).
pub(in crate::store) fn insert_sessions(n: usize) -> &'static str {
    use crate::store::batched_creates::MAX_BATCH;
    static SQL: [std::sync::OnceLock<String>; MAX_BATCH] =
        [const { std::sync::OnceLock::new() }; MAX_BATCH];
    assert!((1..=MAX_BATCH).contains(&n), "1 to {MAX_BATCH} creates");
    SQL[n - 1].get_or_init(|| {
        (0..n)
            .map(|i| {
                format!(
                    "{};\nSAVEPOINT batched_{i};\n{}",
                    params_shifted(&REFERENCES, PER_CREATE * i),
                    params_shifted(INSERT_SESSION, PER_CREATE * i + 5)
                )
            })
            .collect::<Vec<_>>()
            .join(";\n")
    })
}

/// Parameters of one create in `insert_sessions`: `REFERENCES`' 5, then
/// `INSERT_SESSION`'s 15.
const PER_CREATE: usize = 20;

/// `INSERT_PROMPT` that first begins a group member's savepoint.
pub(in crate::store) static SAVEPOINT_THEN_INSERT_PROMPT: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("SAVEPOINT member;\n{INSERT_PROMPT}"));

#[cfg(test)]
mod tests {
    #[test]
    fn batched_creates_bind_one_after_another() {
        let three = super::insert_sessions(3);
        assert!(three.contains("$60") && !three.contains("$61"));
        assert!(three.contains("SAVEPOINT batched_2;"));
        assert_eq!(super::insert_sessions(1).matches("SAVEPOINT").count(), 1);
    }

    #[test]
    fn the_rechecked_insert_binds_after_the_references() {
        let checked = super::RECHECK_THEN_INSERT_SESSION.as_str();
        assert!(checked.contains("$20") && !checked.contains("$21"));
    }
}
