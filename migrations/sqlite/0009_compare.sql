-- Compare and continue: a turn (a prompt) may be answered again by a model
-- (a new attempt; the earlier ones stay), each answer may be rated, and the
-- learner chooses the turn's best answer, a tie, or that none was good.
ALTER TABLE responses ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
ALTER TABLE responses ADD COLUMN rating TEXT CHECK (rating IN ('up', 'down'));
ALTER TABLE responses ADD COLUMN rating_comment TEXT;
ALTER TABLE prompts ADD COLUMN outcome TEXT CHECK (outcome IN ('chosen', 'tie', 'none_good'));
ALTER TABLE prompts ADD COLUMN chosen_response_id INTEGER REFERENCES responses (response_id) ON DELETE SET NULL;
-- A blind session hides which model gave an answer until its turn is
-- chosen.
ALTER TABLE session_settings ADD COLUMN blind INTEGER NOT NULL DEFAULT 0;
-- What each model is shown of earlier turns: its own answers ('own'), or
-- the answer the learner chose where a turn has one ('chosen').
ALTER TABLE session_settings ADD COLUMN continue_from TEXT NOT NULL DEFAULT 'own'
    CHECK (continue_from IN ('own', 'chosen'));
-- A RegenerateResponse's key names the attempt it made.
ALTER TABLE idempotency_keys ADD COLUMN response_id INTEGER REFERENCES responses (response_id) ON DELETE CASCADE;
-- A model's history, newest first, one answer per turn: planned from the
-- index alone (the turn is part of it now).
DROP INDEX responses_by_model;
CREATE INDEX responses_by_model ON responses (session_model_id, response_id, status, text_chars, prompt_id);
-- A class's model statistics read its sessions' answers and turns.
CREATE INDEX practice_sessions_by_class ON practice_sessions (class_id, session_id)
    WHERE class_id IS NOT NULL;
CREATE INDEX prompts_chosen ON prompts (session_id, prompt_id) WHERE outcome IS NOT NULL;
