-- A session's knowledge list, settings, few-shot links and models no longer
-- carry foreign keys to the session (or, for the links, to its settings);
-- a trigger on practice_sessions removes them with their session instead of
-- ON DELETE CASCADE.
--
-- Why: PostgreSQL checks a foreign key with a query per inserted row, and
-- CreateSession writes a row per knowledge item, model and few-shot example
-- plus the settings (nine for a typical session), all in the statement
-- that inserts the session itself (the store's INSERT_SESSION), so each of
-- those checks could only confirm what that statement had just written.
-- Foreign-key checks were about a fifth of PostgreSQL's CPU per create, and
-- these were nine of the twelve.
--
-- What still holds these rows to their session:
-- - knowledge, settings and models rows are written only by that statement;
-- - few-shot links are also replaced by UpdateSessionSettings, which first
--   updates the session row: a delete waits for that update to commit, and
--   the trigger's statements, run after it, see the links it wrote.
-- Foreign keys to rows other requests write stay: links to examples,
-- prompts and responses to their session, responses to session models.

ALTER TABLE session_knowledge DROP CONSTRAINT session_knowledge_session_id_fkey;
ALTER TABLE session_settings DROP CONSTRAINT session_settings_session_id_fkey;
ALTER TABLE few_shot_links DROP CONSTRAINT few_shot_links_setting_id_fkey;
ALTER TABLE session_models DROP CONSTRAINT session_models_session_id_fkey;

CREATE FUNCTION remove_session_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM few_shot_links WHERE setting_id IN
        (SELECT setting_id FROM session_settings WHERE session_id = OLD.session_id);
    DELETE FROM session_settings WHERE session_id = OLD.session_id;
    DELETE FROM session_knowledge WHERE session_id = OLD.session_id;
    -- Responses go with their models (their foreign key cascades).
    DELETE FROM session_models WHERE session_id = OLD.session_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER practice_sessions_remove_rows
    AFTER DELETE ON practice_sessions
    FOR EACH ROW EXECUTE FUNCTION remove_session_rows();
