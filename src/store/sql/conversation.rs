//! The conversation's SQL, as `super` (both databases, as written): prompts
//! and their responses, the text saved as it arrives, usage, replica
//! leases, and the turns' attempts, ratings and choices.

// --- the conversation ---

// A new prompt, its responses and its key's link are written in one call,
// in each database's own SQL (`sqlite::INSERT_PROMPT`,
// `postgres::INSERT_PROMPT`).

/// Stores how an answer ended, unless it has already ended (its replica was
/// thought dead and it was swept) or is gone (its session was deleted).
pub const FINISH_RESPONSE: &str = "\
UPDATE responses
SET response_text = $2, status = $3, error = $4, token_usage = $5, latency_ms = $6,
    first_byte_ms = $7, text_chars = $8, cost_micros = $9
WHERE response_id = $1 AND status = 'in_progress'";

/// A response's status and error, by id.
pub const RESPONSE_STATUS: &str = "SELECT status, error FROM responses WHERE response_id = $1";

/// The text of an answer in progress so far, so a crash loses at most what
/// arrived since.
pub const SAVE_PARTIAL: &str = "\
UPDATE responses SET response_text = $2, text_chars = $3
WHERE response_id = $1 AND status = 'in_progress'";

// --- usage ---

/// Adds one answer's tokens to the day (`$2`) of each of its subjects
/// (`$1`, and `$7` unless NULL) for a model. Sent with `FINISH_RESPONSE`,
/// its parameters shifted past that one's (`sqlite::FINISH_ANSWER`,
/// `postgres::FINISH_ANSWER`).
pub const CHARGE_USAGE: &str = "\
INSERT INTO usage_daily
    (subject, day, model_name, answers, prompt_tokens, completion_tokens, cost_micros)
SELECT subjects.column1, $2, $3, 1, $4, $5, $6
FROM (VALUES ($1), ($7)) AS subjects WHERE subjects.column1 IS NOT NULL
ON CONFLICT (subject, day, model_name) DO UPDATE SET
    answers = usage_daily.answers + 1,
    prompt_tokens = usage_daily.prompt_tokens + excluded.prompt_tokens,
    completion_tokens = usage_daily.completion_tokens + excluded.completion_tokens,
    cost_micros = usage_daily.cost_micros + excluded.cost_micros";

/// Days before `$1` (`YYYY-MM-DD`), which no budget or report reads.
pub const DELETE_OLD_USAGE: &str = "DELETE FROM usage_daily WHERE day < $1";

/// A subject's (`$1`) usage on a day (`$2`), per model.
pub const USAGE: &str = "\
SELECT model_name, answers, prompt_tokens, completion_tokens, cost_micros
FROM usage_daily WHERE subject = $1 AND day = $2 ORDER BY model_name";

// --- replica leases ---

pub const RENEW_LEASE: &str = "\
INSERT INTO replica_leases (replica_id, expires_at) VALUES ($1, $2)
ON CONFLICT (replica_id) DO UPDATE SET expires_at = excluded.expires_at";

/// Answers in progress whose replica holds no live lease at `$1`: failed,
/// "interrupted", keeping their text. Answers written before leases
/// existed have no replica and count as interrupted.
pub const FAIL_ORPHANED: &str = "\
UPDATE responses SET status = 'failed', error = 'interrupted'
WHERE status = 'in_progress'
  AND (replica_id IS NULL OR NOT EXISTS (
      SELECT 1 FROM replica_leases l
      WHERE l.replica_id = responses.replica_id AND l.expires_at > $1))";

/// This replica's (`$1`) answers still in progress as it stops.
pub const FAIL_OWN: &str = "\
UPDATE responses SET status = 'failed', error = 'interrupted'
WHERE status = 'in_progress' AND replica_id = $1";

pub const DROP_LEASE: &str = "DELETE FROM replica_leases WHERE replica_id = $1";

/// Leases that ran out before `$1`.
pub const DROP_EXPIRED_LEASES: &str = "DELETE FROM replica_leases WHERE expires_at < $1";

/// The responses of the caller's (`$2`) prompt `$1`, in the models' order.
pub const PROMPT_RESPONSES: &str = "\
SELECT r.response_id, r.session_model_id, r.session_id, r.model_name, r.prompt_text,
       r.response_text, r.created_at, r.token_usage, r.latency_ms, r.status, r.error,
       r.first_byte_ms, r.prompt_id, r.attempt, r.rating, r.rating_comment, r.cost_micros,
       CASE WHEN p.outcome IS NULL THEN ''
            WHEN p.outcome <> 'chosen' THEN p.outcome
            WHEN p.chosen_response_id = r.response_id THEN 'chosen'
            ELSE 'not_chosen' END AS choice,
       (SELECT st.blind FROM session_settings st WHERE st.session_id = r.session_id) AS blind
FROM responses r JOIN practice_sessions s ON s.session_id = r.session_id
     LEFT JOIN prompts p ON p.prompt_id = r.prompt_id
WHERE r.prompt_id = $1 AND s.user_id = $2 ORDER BY r.response_id";

/// One response of the caller's (`$3`) session `$2`, by id (`$1`).
pub const ONE_RESPONSE: &str = "\
SELECT r.response_id, r.session_model_id, r.session_id, r.model_name, r.prompt_text,
       r.response_text, r.created_at, r.token_usage, r.latency_ms, r.status, r.error,
       r.first_byte_ms, r.prompt_id, r.attempt, r.rating, r.rating_comment, r.cost_micros,
       CASE WHEN p.outcome IS NULL THEN ''
            WHEN p.outcome <> 'chosen' THEN p.outcome
            WHEN p.chosen_response_id = r.response_id THEN 'chosen'
            ELSE 'not_chosen' END AS choice,
       (SELECT st.blind FROM session_settings st WHERE st.session_id = r.session_id) AS blind
FROM responses r JOIN practice_sessions s ON s.session_id = r.session_id
     LEFT JOIN prompts p ON p.prompt_id = r.prompt_id
WHERE r.response_id = $1 AND r.session_id = $2 AND s.user_id = $3";

/// Rates the caller's (`$5`) response `$1` of session `$2`: `$3` up, down
/// or NULL, with the comment `$4`.
pub const RATE_RESPONSE: &str = "\
UPDATE responses SET rating = $3, rating_comment = $4
WHERE response_id = $1 AND session_id = $2
  AND session_id IN (SELECT session_id FROM practice_sessions WHERE user_id = $5)";

/// Sets the choice (`$3`: chosen, tie or none_good; `$4` the chosen
/// response or NULL) of the turn of the caller's (`$5`) response `$1` of
/// session `$2`; the turn's prompt id.
pub const CHOOSE: &str = "\
UPDATE prompts SET outcome = $3, chosen_response_id = $4
WHERE prompt_id = (
    SELECT r.prompt_id FROM responses r JOIN practice_sessions s ON s.session_id = r.session_id
    WHERE r.response_id = $1 AND r.session_id = $2 AND s.user_id = $5)
RETURNING prompt_id";

/// A new attempt at the turn of the caller's (`$3`) response `$1` of
/// session `$2`, by the same model, answered by the replica `$5`.
pub const INSERT_ATTEMPT: &str = "\
INSERT INTO responses
    (prompt_id, session_model_id, session_id, model_name, prompt_text, response_text,
     created_at, status, replica_id, text_chars, attempt)
SELECT r.prompt_id, r.session_model_id, r.session_id, r.model_name, r.prompt_text, '',
       $4, 'in_progress', $5, length(r.prompt_text),
       (SELECT MAX(x.attempt) + 1 FROM responses x
        WHERE x.prompt_id = r.prompt_id AND x.session_model_id = r.session_model_id)
FROM responses r JOIN practice_sessions s ON s.session_id = r.session_id
WHERE r.response_id = $1 AND r.session_id = $2 AND s.user_id = $3 AND r.prompt_id IS NOT NULL
RETURNING response_id, attempt";

pub const LINK_KEY_TO_RESPONSE: &str =
    "UPDATE idempotency_keys SET response_id = $3 WHERE user_id = $1 AND idem_key = $2";
