-- The conversation: each SendPrompt is a prompt, answered by one response
-- per session model asked.
CREATE TABLE prompts (
    prompt_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id  INTEGER NOT NULL REFERENCES practice_sessions (session_id) ON DELETE CASCADE,
    prompt_text TEXT NOT NULL CHECK (length(prompt_text) > 0),
    created_at  TEXT NOT NULL
);
CREATE INDEX prompts_by_session ON prompts (session_id, prompt_id);

-- Responses written before this migration are completed answers.
ALTER TABLE responses ADD COLUMN prompt_id INTEGER REFERENCES prompts (prompt_id) ON DELETE CASCADE;
ALTER TABLE responses ADD COLUMN status TEXT NOT NULL DEFAULT 'completed'
    CHECK (status IN ('in_progress', 'completed', 'failed', 'cancelled'));
ALTER TABLE responses ADD COLUMN error TEXT;
ALTER TABLE responses ADD COLUMN first_byte_ms INTEGER CHECK (first_byte_ms >= 0);
CREATE INDEX responses_by_prompt ON responses (prompt_id);

-- A SendPrompt's key names its prompt, as a CreateSession's names its session.
ALTER TABLE idempotency_keys ADD COLUMN prompt_id INTEGER REFERENCES prompts (prompt_id) ON DELETE CASCADE;
