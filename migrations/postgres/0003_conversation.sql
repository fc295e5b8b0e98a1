-- The conversation: each SendPrompt is a prompt, answered by one response
-- per session model asked.
CREATE TABLE prompts (
    prompt_id   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id  BIGINT NOT NULL REFERENCES practice_sessions (session_id) ON DELETE CASCADE,
    prompt_text TEXT NOT NULL CHECK (char_length(prompt_text) > 0),
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX prompts_by_session ON prompts (session_id, prompt_id);

-- Responses written before this migration are completed answers.
ALTER TABLE responses
    ADD COLUMN prompt_id BIGINT REFERENCES prompts (prompt_id) ON DELETE CASCADE,
    ADD COLUMN status TEXT NOT NULL DEFAULT 'completed'
        CHECK (status IN ('in_progress', 'completed', 'failed', 'cancelled')),
    ADD COLUMN error TEXT,
    ADD COLUMN first_byte_ms BIGINT CHECK (first_byte_ms >= 0);
CREATE INDEX responses_by_prompt ON responses (prompt_id);

-- A SendPrompt's key names its prompt, as a CreateSession's names its session.
ALTER TABLE idempotency_keys
    ADD COLUMN prompt_id BIGINT REFERENCES prompts (prompt_id) ON DELETE CASCADE;
