//! The SQL that SQLite and PostgreSQL both accept as written, one string per
//! query. `$n` placeholders work on both drivers. Column aliases name the
//! fields of the row structs in `rows.rs`. The conversation's (prompts,
//! responses, usage, leases, ratings and choices) is in `conversation`;
//! SQLite's own, and its multi-statement calls, in `sqlite`.

mod conversation;
pub mod sqlite;

pub use conversation::*;

// --- idempotency keys ---

/// Inserts the claim, or takes over one older than `$5`. A live key
/// conflicts and returns no row.
pub const CLAIM_KEY: &str = "\
INSERT INTO idempotency_keys (user_id, idem_key, request_hash, session_id, created_at_us)
VALUES ($1, $2, $3, NULL, $4)
ON CONFLICT (user_id, idem_key) DO UPDATE
SET request_hash = excluded.request_hash, session_id = NULL, prompt_id = NULL, example_id = NULL,
    response_id = NULL, created_at_us = excluded.created_at_us
WHERE idempotency_keys.created_at_us < $5
RETURNING user_id";

pub const HELD_KEY: &str = "\
SELECT request_hash, session_id, prompt_id, example_id, response_id FROM idempotency_keys
WHERE user_id = $1 AND idem_key = $2";

pub const LINK_KEY_TO_EXAMPLE: &str =
    "UPDATE idempotency_keys SET example_id = $3 WHERE user_id = $1 AND idem_key = $2";

/// Keys past their lifetime (the claim takes over an expired key too; this
/// keeps the table from growing with keys nobody reuses).
pub const DELETE_EXPIRED_KEYS: &str = "DELETE FROM idempotency_keys WHERE created_at_us < $1";

// --- agents ---

/// The agent (`$1`) if the caller (`$2`) owns it or is in its class, joined
/// with every example it lists, in the agent's order: one round trip.
pub const AGENT_WITH_EXAMPLES: &str = "\
SELECT a.agent_id, a.owner_user_id, a.class_id, a.name, a.description, a.system_prompt,
       a.style_preset, a.style_params, a.generation_params, a.updated_at AS agent_updated_at,
       e.deleted_at IS NULL AS example_live,
       e.example_id, e.user_id, e.input_text, e.output_text, e.is_active,
       e.created_at, e.updated_at, e.title, e.meta, ae.position AS example_position
FROM agents a
LEFT JOIN agent_examples ae ON ae.agent_id = a.agent_id
LEFT JOIN examples e ON e.example_id = ae.example_id
WHERE a.agent_id = $1 AND a.deleted_at IS NULL
  AND (a.owner_user_id = $2 OR a.class_id IN (
      SELECT m.class_id FROM class_members m JOIN classes c ON c.class_id = m.class_id
      WHERE m.user_id = $2 AND c.deleted_at IS NULL))
ORDER BY ae.position";

pub const UPSERT_AGENT: &str = "\
INSERT INTO agents (agent_id, owner_user_id, class_id, name, description, system_prompt,
                    style_preset, style_params, generation_params, updated_at, deleted_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL)
ON CONFLICT (agent_id) DO UPDATE SET
    owner_user_id = excluded.owner_user_id, class_id = excluded.class_id, name = excluded.name,
    description = excluded.description, system_prompt = excluded.system_prompt,
    style_preset = excluded.style_preset, style_params = excluded.style_params,
    generation_params = excluded.generation_params, updated_at = excluded.updated_at,
    deleted_at = NULL";

pub const DELETE_AGENT_EXAMPLES: &str = "DELETE FROM agent_examples WHERE agent_id = $1";

pub const INSERT_AGENT_EXAMPLES: &str =
    "INSERT INTO agent_examples (agent_id, position, example_id) ";

// --- the rest of the catalog ---

pub const UPSERT_CLASS: &str = "\
INSERT INTO classes (class_id, name, updated_at, deleted_at) VALUES ($1, $2, $3, NULL)
ON CONFLICT (class_id) DO UPDATE SET
    name = excluded.name, updated_at = excluded.updated_at, deleted_at = NULL";

pub const DELETE_CLASS_MEMBERS: &str = "DELETE FROM class_members WHERE class_id = $1";
pub const DELETE_CLASS_MODELS: &str = "DELETE FROM class_models WHERE class_id = $1";
pub const INSERT_CLASS_MEMBERS: &str = "INSERT INTO class_members (class_id, user_id, role) ";
pub const INSERT_CLASS_MODELS: &str =
    "INSERT INTO class_models (class_id, position, model_name, enabled) ";

pub const UPSERT_PROJECT: &str = "\
INSERT INTO projects (project_id, owner_user_id, class_id, name, updated_at, deleted_at)
VALUES ($1, $2, $3, $4, $5, NULL)
ON CONFLICT (project_id) DO UPDATE SET
    owner_user_id = excluded.owner_user_id, class_id = excluded.class_id, name = excluded.name,
    updated_at = excluded.updated_at, deleted_at = NULL";

pub const UPSERT_KNOWLEDGE: &str = "\
INSERT INTO knowledge_items
    (knowledge_id, owner_user_id, project_id, class_id, title, updated_at, deleted_at)
VALUES ($1, $2, $3, $4, $5, $6, NULL)
ON CONFLICT (knowledge_id) DO UPDATE SET
    owner_user_id = excluded.owner_user_id, project_id = excluded.project_id,
    class_id = excluded.class_id, title = excluded.title, updated_at = excluded.updated_at,
    deleted_at = NULL";

pub const DELETE_CLASS: &str =
    "UPDATE classes SET deleted_at = $2 WHERE class_id = $1 AND deleted_at IS NULL";
pub const DELETE_PROJECT: &str =
    "UPDATE projects SET deleted_at = $2 WHERE project_id = $1 AND deleted_at IS NULL";
pub const DELETE_KNOWLEDGE: &str =
    "UPDATE knowledge_items SET deleted_at = $2 WHERE knowledge_id = $1 AND deleted_at IS NULL";
pub const DELETE_AGENT: &str =
    "UPDATE agents SET deleted_at = $2 WHERE agent_id = $1 AND deleted_at IS NULL";

// --- sessions ---

pub const SESSION: &str = "\
SELECT session_id, user_id, class_id, project_id, agent_id, title, notes, created_at, updated_at
FROM practice_sessions WHERE session_id = $1 AND user_id = $2";

/// The caller's (`$2`) session `$1`, if it is theirs.
pub const SESSION_OWNED: &str =
    "SELECT session_id FROM practice_sessions WHERE session_id = $1 AND user_id = $2";

pub const SESSION_KNOWLEDGE: &str =
    "SELECT knowledge_id FROM session_knowledge WHERE session_id = $1 ORDER BY position";

pub const SESSION_SETTINGS: &str = "\
SELECT setting_id, style_preset, style_params, generation_params, agent_snapshot,
       created_at, updated_at, blind, continue_from
FROM session_settings WHERE session_id = $1";

/// The few-shot links of the session `$1`'s settings, with their examples.
pub const FEW_SHOT_LINKS: &str = "\
SELECT l.id AS link_id, l.sort_order, l.created_at AS link_created_at,
       e.example_id, e.user_id, e.input_text, e.output_text, e.is_active,
       e.created_at, e.updated_at, e.title, e.meta
FROM few_shot_links l JOIN examples e ON e.example_id = l.example_id
WHERE l.setting_id = (SELECT setting_id FROM session_settings WHERE session_id = $1)
ORDER BY l.sort_order";

pub const SESSION_MODELS: &str = "\
SELECT session_model_id, model_name, sort_order, created_at
FROM session_models WHERE session_id = $1 ORDER BY sort_order";

/// The sizes (characters of prompt and answer) of the session's (`$1`)
/// newest responses, newest first, at most `$2`: what a bounded read plans
/// with before it reads any text (from the index `responses_by_session`).
pub const NEWEST_RESPONSE_SIZES: &str = "\
SELECT response_id, text_chars AS chars
FROM responses WHERE session_id = $1 ORDER BY response_id DESC LIMIT $2";

/// The sizes of the session's (`$1`) responses with ids above `$2` up to
/// `$3`, oldest first, at most `$4`.
pub const PAGE_RESPONSE_SIZES: &str = "\
SELECT response_id, text_chars AS chars
FROM responses WHERE session_id = $1 AND response_id > $2 AND response_id <= $3
ORDER BY response_id LIMIT $4";

/// The session's (`$1`) responses with ids from `$2` to `$3`, oldest first,
/// each with its turn's choice as it stands for it.
pub const RESPONSES_BETWEEN: &str = "\
SELECT r.response_id, r.session_model_id, r.session_id, r.model_name, r.prompt_text,
       r.response_text, r.created_at, r.token_usage, r.latency_ms, r.status, r.error,
       r.first_byte_ms, r.prompt_id, r.attempt, r.rating, r.rating_comment, r.cost_micros,
       CASE WHEN p.outcome IS NULL THEN ''
            WHEN p.outcome <> 'chosen' THEN p.outcome
            WHEN p.chosen_response_id = r.response_id THEN 'chosen'
            ELSE 'not_chosen' END AS choice,
       (SELECT st.blind FROM session_settings st WHERE st.session_id = r.session_id) AS blind
FROM responses r LEFT JOIN prompts p ON p.prompt_id = r.prompt_id
WHERE r.session_id = $1 AND r.response_id BETWEEN $2 AND $3
ORDER BY r.response_id";

/// The session's (`$1`) highest response id: where a listing's snapshot ends.
pub const LAST_RESPONSE_ID: &str =
    "SELECT COALESCE(MAX(response_id), 0) FROM responses WHERE session_id = $1";

/// The sizes of a session model's (`$1`) completed answers to turns before
/// the turn `$3`, newest first, at most `$2`.
pub const HISTORY_SIZES: &str = "\
SELECT response_id, text_chars AS chars, prompt_id
FROM responses WHERE session_model_id = $1 AND status = 'completed' AND prompt_id < $3
ORDER BY response_id DESC LIMIT $2";

/// The sizes of the answers session model `$4` of session `$1` is shown of
/// turns before `$3` when it continues from the chosen answers: a turn's
/// chosen answer where it has one (whichever model gave it), else the
/// model's own; newest turn first, at most `$2`.
pub const CHOSEN_HISTORY_SIZES: &str = "\
SELECT r.response_id, r.text_chars AS chars, r.prompt_id
FROM prompts p JOIN responses r ON r.prompt_id = p.prompt_id
WHERE p.session_id = $1 AND p.prompt_id < $3 AND r.status = 'completed'
  AND (r.response_id = p.chosen_response_id
       OR (r.session_model_id = $4
           AND (p.outcome IS NULL OR p.outcome <> 'chosen' OR p.chosen_response_id IS NULL)))
ORDER BY p.prompt_id DESC, r.response_id DESC LIMIT $2";

/// Those answers' texts, for turns from `$2` to before `$3`.
pub const CHOSEN_HISTORY: &str = "\
SELECT r.response_id, r.prompt_text, r.response_text
FROM prompts p JOIN responses r ON r.prompt_id = p.prompt_id
WHERE p.session_id = $1 AND p.prompt_id >= $2 AND p.prompt_id < $3
  AND r.status = 'completed'
  AND (r.response_id = p.chosen_response_id
       OR (r.session_model_id = $4
           AND (p.outcome IS NULL OR p.outcome <> 'chosen' OR p.chosen_response_id IS NULL)))
ORDER BY p.prompt_id DESC, r.response_id DESC";

/// A session model's (`$1`) completed answers from id `$2` on, newest
/// first, to turns before the turn `$3`.
pub const HISTORY: &str = "\
SELECT response_id, prompt_text, response_text
FROM responses
WHERE session_model_id = $1 AND status = 'completed' AND response_id >= $2 AND prompt_id < $3
ORDER BY response_id DESC";

/// One page of the caller's (`$1`) sessions as they stood at `$2`, newest
/// first, after the cursor `($5, $6)`, at most `$7`, filtered by class
/// (`$3`) and project (`$4`). Sessions not updated since `$2` come straight
/// off the recency index; the few updated since are placed by the
/// `updated_at` their first later change replaced (`session_versions`).
pub const SESSION_PAGE: &str = "\
SELECT session_id, placed_at FROM (
    SELECT session_id, placed_at FROM (
        SELECT s.session_id, s.updated_at AS placed_at FROM practice_sessions s
        WHERE s.user_id = $1 AND s.updated_at <= $2
          AND ($3 IS NULL OR s.class_id = $3) AND ($4 IS NULL OR s.project_id = $4)
          AND (s.updated_at < $5 OR (s.updated_at = $5 AND s.session_id < $6))
        ORDER BY s.updated_at DESC, s.session_id DESC
        LIMIT $7
    ) settled
    UNION ALL
    SELECT session_id, placed_at FROM (
        SELECT s.session_id,
               COALESCE((SELECT v.old_updated_at FROM session_versions v
                         WHERE v.session_id = s.session_id AND v.changed_at > $2
                         ORDER BY v.changed_at LIMIT 1), s.created_at) AS placed_at
        FROM practice_sessions s
        WHERE s.user_id = $1 AND s.updated_at > $2 AND s.created_at <= $2
          AND ($3 IS NULL OR s.class_id = $3) AND ($4 IS NULL OR s.project_id = $4)
    ) moved
    WHERE placed_at < $5 OR (placed_at = $5 AND session_id < $6)
) page
ORDER BY placed_at DESC, session_id DESC
LIMIT $7";

/// `$3`/`$5` say whether the patch carries a title/notes (`$4`/`$6`, NULL
/// clears).
pub const UPDATE_SESSION: &str = "\
UPDATE practice_sessions SET
    title = CASE WHEN $3 THEN $4 ELSE title END,
    notes = CASE WHEN $5 THEN $6 ELSE notes END,
    updated_at = $7
WHERE session_id = $1 AND user_id = $2
RETURNING session_id";

pub const DELETE_SESSION: &str =
    "DELETE FROM practice_sessions WHERE session_id = $1 AND user_id = $2 RETURNING session_id";

pub const TOUCH_SESSION: &str = "\
UPDATE practice_sessions SET updated_at = $3 WHERE session_id = $1 AND user_id = $2
RETURNING session_id";

pub const TOUCH_SETTINGS: &str =
    "UPDATE session_settings SET updated_at = $2 WHERE session_id = $1 RETURNING setting_id";

pub const LINKED_EXAMPLE_IDS: &str =
    "SELECT example_id FROM few_shot_links WHERE setting_id = $1 ORDER BY sort_order";

pub const UPDATE_SETTINGS: &str = "\
UPDATE session_settings SET
    style_preset = COALESCE($2, style_preset),
    style_params = COALESCE($3, style_params),
    generation_params = COALESCE($4, generation_params),
    blind = COALESCE($5, blind),
    continue_from = COALESCE($6, continue_from)
WHERE setting_id = $1";

pub const DELETE_LINKS: &str = "DELETE FROM few_shot_links WHERE setting_id = $1";

pub const INSERT_LINKS: &str =
    "INSERT INTO few_shot_links (setting_id, example_id, sort_order, created_at) ";

// --- examples ---

pub const CREATE_EXAMPLE: &str = "\
INSERT INTO examples (user_id, title, input_text, output_text, is_active, meta, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING example_id";

pub const EXAMPLE: &str = "\
SELECT example_id, user_id, input_text, output_text, is_active, created_at, updated_at, title, meta
FROM examples WHERE example_id = $1 AND user_id = $2 AND deleted_at IS NULL";

pub const EXAMPLES_AFTER: &str = "\
SELECT example_id, user_id, input_text, output_text, is_active, created_at, updated_at, title, meta
FROM examples WHERE user_id = $1 AND deleted_at IS NULL AND example_id > $2
ORDER BY example_id LIMIT $3";

/// One statement: each column keeps its value unless the patch carries one,
/// so concurrent updates of different fields both land.
pub const UPDATE_EXAMPLE: &str = "\
UPDATE examples SET
    title = CASE WHEN $3 THEN $4 ELSE title END,
    input_text = COALESCE($5, input_text),
    output_text = COALESCE($6, output_text),
    is_active = COALESCE($7, is_active),
    meta = COALESCE($8, meta),
    updated_at = $9
WHERE example_id = $1 AND user_id = $2 AND deleted_at IS NULL
RETURNING example_id, user_id, input_text, output_text, is_active, created_at, updated_at, title, meta";

pub const DELETE_EXAMPLE: &str = "\
UPDATE examples SET deleted_at = $3, updated_at = $3
WHERE example_id = $1 AND user_id = $2 AND deleted_at IS NULL";

pub const TABLE_COUNTS: &str = "\
SELECT (SELECT COUNT(*) FROM practice_sessions) AS sessions,
       (SELECT COUNT(*) FROM session_knowledge) AS session_knowledge,
       (SELECT COUNT(*) FROM session_settings) AS settings,
       (SELECT COUNT(*) FROM few_shot_links) AS few_shot_links,
       (SELECT COUNT(*) FROM session_models) AS session_models,
       (SELECT COUNT(*) FROM prompts) AS prompts,
       (SELECT COUNT(*) FROM responses) AS responses,
       (SELECT COUNT(*) FROM idempotency_keys) AS idempotency_keys,
       (SELECT COUNT(*) FROM session_versions) AS session_versions";

pub fn delete_catalog(kind: super::CatalogKind) -> &'static str {
    match kind {
        super::CatalogKind::Class => DELETE_CLASS,
        super::CatalogKind::Project => DELETE_PROJECT,
        super::CatalogKind::Knowledge => DELETE_KNOWLEDGE,
        super::CatalogKind::Agent => DELETE_AGENT,
    }
}

/// The class (`$3`) with its enabled models, the project (`$4`) with its
/// class, and the knowledge items (`$5`) that the caller (`$2`) may see,
/// tagged by part (see `rows::RefRow`): who may use what, in one query for
/// both databases. `in_list` is the dialect's way to say that
/// `k.knowledge_id` is one of `$5`. `$1` is the agent of
/// `AGENT_WITH_EXAMPLES`, sent with it.
pub fn visible_refs(in_list: &str) -> String {
    format!(
        "\
WITH mine AS (
    SELECT m.class_id FROM class_members m JOIN classes c ON c.class_id = m.class_id
    WHERE m.user_id = $2 AND c.deleted_at IS NULL
)
SELECT CAST(1 AS BIGINT) AS part, cm.position AS pos, CAST(NULL AS BIGINT) AS ref_id,
       cm.model_name
FROM mine LEFT JOIN class_models cm ON cm.class_id = mine.class_id AND cm.enabled
WHERE mine.class_id = $3
UNION ALL
SELECT 2, 0, p.class_id, NULL FROM projects p
WHERE p.project_id = $4 AND p.deleted_at IS NULL
  AND (p.owner_user_id = $2 OR p.class_id IN (SELECT class_id FROM mine))
UNION ALL
SELECT 3, 0, k.knowledge_id, NULL FROM knowledge_items k
WHERE {in_list} AND k.deleted_at IS NULL
  AND (k.owner_user_id = $2
       OR k.class_id IN (SELECT class_id FROM mine)
       OR k.project_id IN (SELECT p.project_id FROM projects p WHERE p.deleted_at IS NULL
                           AND (p.owner_user_id = $2 OR p.class_id IN (SELECT class_id FROM mine))))
ORDER BY 1, 2"
    )
}

/// `sql` with each parameter `$N` renumbered `$(N + by)`, so that it can
/// follow statements binding the first `by` in the same call.
pub fn params_shifted(sql: &str, by: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            let n: usize = rest[..digits].parse().expect("ascii digits");
            out.push_str(&(n + by).to_string());
            rest = &rest[digits..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn parameters_shift_past_those_bound_before() {
        assert_eq!(
            super::params_shifted("VALUES ($1, $12, '$x', $3)", 5),
            "VALUES ($6, $17, '$x', $8)"
        );
    }
}
