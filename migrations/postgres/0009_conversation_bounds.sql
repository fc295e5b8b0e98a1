-- A response in progress belongs to the replica answering it. Each replica
-- keeps a lease here while it lives; an answer whose replica's lease has
-- run out (a crash, a kill) is stored as failed "interrupted" by whichever
-- replica notices first. Adding a nullable column rewrites nothing.
CREATE TABLE replica_leases (
    replica_id TEXT PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);
ALTER TABLE responses ADD COLUMN replica_id TEXT;
-- The characters of prompt and answer text, kept beside the text so that
-- a bounded read can plan from the indexes below without reading any text.
ALTER TABLE responses ADD COLUMN text_chars BIGINT NOT NULL DEFAULT 0;
UPDATE responses SET text_chars = length(prompt_text) + length(response_text);
-- The sweep for expired leases reads only the answers in progress.
CREATE INDEX responses_in_progress ON responses (replica_id) WHERE status = 'in_progress';
-- A session's newest responses and its pages, planned from the index alone.
DROP INDEX responses_by_session;
CREATE INDEX responses_by_session ON responses (session_id, response_id, text_chars);
-- A model's history, newest first, planned from the index alone.
CREATE INDEX responses_by_model ON responses (session_model_id, response_id, status, text_chars);
