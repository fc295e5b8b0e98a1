-- A new session's rows in one statement: an INSERT into this view runs the
-- trigger below, which writes the session, its knowledge ids, settings,
-- few-shot links and models, and links the idempotency key. One statement
-- is one call to the connection's worker thread instead of six.
--
-- The trigger finds the rows it just wrote as the tables' largest ids: with
-- AUTOINCREMENT a new id is above every id ever used, and the transaction
-- holds SQLite's write lock (BEGIN IMMEDIATE) until it commits.
CREATE VIEW new_sessions AS
SELECT
    NULL AS user_id, NULL AS class_id, NULL AS project_id, NULL AS agent_id,
    NULL AS title, NULL AS notes, NULL AS created_at,
    NULL AS knowledge_ids,      -- JSON array of ids, in order
    NULL AS style_preset, NULL AS style_params, NULL AS generation_params,
    NULL AS agent_snapshot,
    NULL AS example_ids,        -- JSON array of the few-shot examples, in order
    NULL AS model_names,        -- JSON array of model names, in order
    NULL AS idem_key
WHERE 0;

CREATE TRIGGER new_sessions_insert INSTEAD OF INSERT ON new_sessions
BEGIN
    INSERT INTO practice_sessions
        (user_id, class_id, project_id, agent_id, title, notes, created_at, updated_at)
    VALUES (NEW.user_id, NEW.class_id, NEW.project_id, NEW.agent_id, NEW.title, NEW.notes,
            NEW.created_at, NEW.created_at);

    INSERT INTO session_knowledge (session_id, position, knowledge_id)
    SELECT (SELECT max(session_id) FROM practice_sessions), j.key, j.value
    FROM json_each(NEW.knowledge_ids) j;

    INSERT INTO session_settings
        (session_id, style_preset, style_params, generation_params, agent_snapshot, created_at, updated_at)
    SELECT max(session_id), NEW.style_preset, NEW.style_params, NEW.generation_params,
           NEW.agent_snapshot, NEW.created_at, NEW.created_at
    FROM practice_sessions;

    INSERT INTO few_shot_links (setting_id, example_id, sort_order, created_at)
    SELECT (SELECT max(setting_id) FROM session_settings), j.value, j.key, NEW.created_at
    FROM json_each(NEW.example_ids) j;

    INSERT INTO session_models (session_id, model_name, sort_order, created_at)
    SELECT (SELECT max(session_id) FROM practice_sessions), j.value, j.key, NEW.created_at
    FROM json_each(NEW.model_names) j;

    UPDATE idempotency_keys SET session_id = (SELECT max(session_id) FROM practice_sessions)
    WHERE NEW.idem_key IS NOT NULL AND user_id = NEW.user_id AND idem_key = NEW.idem_key;
END;
