-- Session lifecycle: listing by recency, and what paging needs to stay a
-- snapshot while sessions are updated.

-- ListSessions: the caller's sessions, most recently updated first.
-- (Timestamps are RFC 3339 text in UTC, which sorts as time does.)
CREATE INDEX practice_sessions_by_recency
    ON practice_sessions (user_id, updated_at DESC, session_id DESC);

-- Each change of a session's updated_at, with the value it replaced. A page
-- after the first lists sessions where they stood when the first page was
-- read (its `as_of`): a session updated since then is placed by the
-- updated_at its first later change replaced.
CREATE TABLE session_versions (
    session_id     INTEGER NOT NULL REFERENCES practice_sessions (session_id) ON DELETE CASCADE,
    changed_at     TEXT NOT NULL,
    old_updated_at TEXT NOT NULL
);
CREATE INDEX session_versions_by_session ON session_versions (session_id, changed_at);

CREATE TRIGGER practice_sessions_record_version
    AFTER UPDATE OF updated_at ON practice_sessions
    FOR EACH ROW WHEN NEW.updated_at IS NOT OLD.updated_at
BEGIN
    INSERT INTO session_versions (session_id, changed_at, old_updated_at)
    VALUES (OLD.session_id, NEW.updated_at, OLD.updated_at);
END;
