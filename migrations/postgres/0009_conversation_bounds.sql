-- A response in progress belongs to the replica answering it. Each replica
-- keeps a lease here while it lives; an answer whose replica's lease has
-- run out (a crash, a kill) is stored as failed "interrupted" by whichever
-- replica notices first. Adding a nullable column rewrites nothing.
CREATE TABLE replica_leases (
    replica_id TEXT PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);
ALTER TABLE responses ADD COLUMN replica_id TEXT;
-- The sweep for expired leases reads only the answers in progress.
CREATE INDEX responses_in_progress ON responses (replica_id) WHERE status = 'in_progress';
-- A model's history is read newest first, a bounded number of rows.
CREATE INDEX responses_by_model ON responses (session_model_id, response_id);
