-- The catalog (pushed by its owners; ids are theirs) and the practice
-- tables. Times are timestamptz; JSON objects are jsonb objects.

CREATE TABLE classes (
    class_id   BIGINT PRIMARY KEY CHECK (class_id >= 1),
    name       TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    deleted_at TIMESTAMPTZ
);

CREATE TABLE class_members (
    class_id BIGINT NOT NULL REFERENCES classes (class_id) ON DELETE CASCADE,
    user_id  BIGINT NOT NULL CHECK (user_id >= 1),
    role     TEXT NOT NULL,
    PRIMARY KEY (class_id, user_id)
);
-- "the caller's classes"
CREATE INDEX class_members_by_user ON class_members (user_id, class_id);

CREATE TABLE class_models (
    class_id   BIGINT NOT NULL REFERENCES classes (class_id) ON DELETE CASCADE,
    position   BIGINT NOT NULL CHECK (position >= 0),
    model_name TEXT NOT NULL CHECK (char_length(model_name) > 0),
    enabled    BOOLEAN NOT NULL,
    PRIMARY KEY (class_id, position),
    UNIQUE (class_id, model_name)
);

-- class_id on projects, knowledge and agents is not a foreign key: owners
-- push objects in any order, and a dangling class simply grants nothing.
CREATE TABLE projects (
    project_id    BIGINT PRIMARY KEY CHECK (project_id >= 1),
    owner_user_id BIGINT NOT NULL CHECK (owner_user_id >= 1),
    class_id      BIGINT CHECK (class_id >= 1),
    name          TEXT NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    deleted_at    TIMESTAMPTZ
);
CREATE INDEX projects_by_owner ON projects (owner_user_id);
CREATE INDEX projects_by_class ON projects (class_id);

CREATE TABLE knowledge_items (
    knowledge_id  BIGINT PRIMARY KEY CHECK (knowledge_id >= 1),
    owner_user_id BIGINT NOT NULL CHECK (owner_user_id >= 1),
    project_id    BIGINT CHECK (project_id >= 1),
    class_id      BIGINT CHECK (class_id >= 1),
    title         TEXT NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    deleted_at    TIMESTAMPTZ
);

CREATE TABLE examples (
    example_id  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     BIGINT NOT NULL CHECK (user_id >= 1),
    title       TEXT,
    input_text  TEXT NOT NULL,
    output_text TEXT NOT NULL,
    is_active   BOOLEAN NOT NULL DEFAULT TRUE,
    meta        JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(meta) = 'object'),
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    deleted_at  TIMESTAMPTZ
);
CREATE INDEX examples_by_user ON examples (user_id, example_id);

CREATE TABLE agents (
    agent_id          BIGINT PRIMARY KEY CHECK (agent_id >= 1),
    owner_user_id     BIGINT NOT NULL CHECK (owner_user_id >= 1),
    class_id          BIGINT CHECK (class_id >= 1),
    name              TEXT NOT NULL,
    description       TEXT,
    system_prompt     TEXT,
    style_preset      TEXT NOT NULL CHECK (style_preset IN ('accurate', 'balanced', 'creative')),
    style_params      JSONB NOT NULL CHECK (jsonb_typeof(style_params) = 'object'),
    generation_params JSONB NOT NULL CHECK (jsonb_typeof(generation_params) = 'object'),
    updated_at        TIMESTAMPTZ NOT NULL,
    deleted_at        TIMESTAMPTZ
);

CREATE TABLE agent_examples (
    agent_id   BIGINT NOT NULL REFERENCES agents (agent_id) ON DELETE CASCADE,
    position   BIGINT NOT NULL CHECK (position >= 0),
    example_id BIGINT NOT NULL REFERENCES examples (example_id),
    PRIMARY KEY (agent_id, position),
    UNIQUE (agent_id, example_id)
);

CREATE TABLE practice_sessions (
    session_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    BIGINT NOT NULL CHECK (user_id >= 1),
    class_id   BIGINT CHECK (class_id >= 1),
    project_id BIGINT CHECK (project_id >= 1),
    agent_id   BIGINT CHECK (agent_id >= 1),
    title      TEXT CHECK (char_length(title) <= 200),
    notes      TEXT CHECK (char_length(notes) <= 20000),
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX practice_sessions_by_user ON practice_sessions (user_id, session_id);

CREATE TABLE session_knowledge (
    session_id   BIGINT NOT NULL REFERENCES practice_sessions (session_id) ON DELETE CASCADE,
    position     BIGINT NOT NULL CHECK (position >= 0 AND position < 50),
    knowledge_id BIGINT NOT NULL CHECK (knowledge_id >= 1),
    PRIMARY KEY (session_id, position),
    UNIQUE (session_id, knowledge_id)
);

CREATE TABLE session_settings (
    setting_id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id        BIGINT NOT NULL UNIQUE REFERENCES practice_sessions (session_id) ON DELETE CASCADE,
    style_preset      TEXT NOT NULL CHECK (style_preset IN ('accurate', 'balanced', 'creative')),
    style_params      JSONB NOT NULL CHECK (jsonb_typeof(style_params) = 'object'),
    generation_params JSONB NOT NULL CHECK (jsonb_typeof(generation_params) = 'object'),
    agent_snapshot    JSONB NOT NULL CHECK (jsonb_typeof(agent_snapshot) = 'object'),
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);

CREATE TABLE few_shot_links (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    setting_id BIGINT NOT NULL REFERENCES session_settings (setting_id) ON DELETE CASCADE,
    example_id BIGINT NOT NULL REFERENCES examples (example_id),
    sort_order BIGINT NOT NULL CHECK (sort_order >= 0),
    created_at TIMESTAMPTZ NOT NULL,
    UNIQUE (setting_id, sort_order)
);

CREATE TABLE session_models (
    session_model_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id       BIGINT NOT NULL REFERENCES practice_sessions (session_id) ON DELETE CASCADE,
    model_name       TEXT NOT NULL CHECK (char_length(model_name) > 0),
    sort_order       BIGINT NOT NULL CHECK (sort_order >= 0),
    created_at       TIMESTAMPTZ NOT NULL,
    UNIQUE (session_id, sort_order)
);

CREATE TABLE responses (
    response_id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_model_id BIGINT NOT NULL REFERENCES session_models (session_model_id) ON DELETE CASCADE,
    session_id       BIGINT NOT NULL REFERENCES practice_sessions (session_id) ON DELETE CASCADE,
    model_name       TEXT NOT NULL,
    prompt_text      TEXT NOT NULL,
    response_text    TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    token_usage      JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(token_usage) = 'object'),
    latency_ms       BIGINT CHECK (latency_ms >= 0)
);
CREATE INDEX responses_by_session ON responses (session_id, response_id);

-- Idempotency keys live in the database so every replica sees them.
-- created_at_us is Unix microseconds: comparable as a number on both engines.
CREATE TABLE idempotency_keys (
    user_id       BIGINT NOT NULL CHECK (user_id >= 1),
    idem_key      TEXT NOT NULL CHECK (char_length(idem_key) BETWEEN 1 AND 255),
    request_hash  TEXT NOT NULL,
    session_id    BIGINT REFERENCES practice_sessions (session_id) ON DELETE CASCADE,
    created_at_us BIGINT NOT NULL,
    PRIMARY KEY (user_id, idem_key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at_us);
