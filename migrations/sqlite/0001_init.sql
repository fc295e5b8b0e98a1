-- The catalog (pushed by its owners; ids are theirs) and the practice
-- tables. Times are RFC 3339 text; JSON objects are text holding a JSON object.

CREATE TABLE classes (
    class_id   INTEGER PRIMARY KEY CHECK (class_id >= 1),
    name       TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT
);

CREATE TABLE class_members (
    class_id INTEGER NOT NULL REFERENCES classes (class_id) ON DELETE CASCADE,
    user_id  INTEGER NOT NULL CHECK (user_id >= 1),
    role     TEXT NOT NULL,
    PRIMARY KEY (class_id, user_id)
);
-- "the caller's classes"
CREATE INDEX class_members_by_user ON class_members (user_id, class_id);

CREATE TABLE class_models (
    class_id   INTEGER NOT NULL REFERENCES classes (class_id) ON DELETE CASCADE,
    position   INTEGER NOT NULL CHECK (position >= 0),
    model_name TEXT NOT NULL CHECK (length(model_name) > 0),
    enabled    INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    PRIMARY KEY (class_id, position),
    UNIQUE (class_id, model_name)
);

-- class_id on projects, knowledge and agents is not a foreign key: owners
-- push objects in any order, and a dangling class simply grants nothing.
CREATE TABLE projects (
    project_id    INTEGER PRIMARY KEY CHECK (project_id >= 1),
    owner_user_id INTEGER NOT NULL CHECK (owner_user_id >= 1),
    class_id      INTEGER CHECK (class_id >= 1),
    name          TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    deleted_at    TEXT
);
CREATE INDEX projects_by_owner ON projects (owner_user_id);
CREATE INDEX projects_by_class ON projects (class_id);

CREATE TABLE knowledge_items (
    knowledge_id  INTEGER PRIMARY KEY CHECK (knowledge_id >= 1),
    owner_user_id INTEGER NOT NULL CHECK (owner_user_id >= 1),
    project_id    INTEGER CHECK (project_id >= 1),
    class_id      INTEGER CHECK (class_id >= 1),
    title         TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    deleted_at    TEXT
);

CREATE TABLE examples (
    example_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL CHECK (user_id >= 1),
    title       TEXT,
    input_text  TEXT NOT NULL,
    output_text TEXT NOT NULL,
    is_active   INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    meta        TEXT NOT NULL DEFAULT '{}' CHECK (json_type(meta) = 'object'),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    deleted_at  TEXT
);
CREATE INDEX examples_by_user ON examples (user_id, example_id);

CREATE TABLE agents (
    agent_id          INTEGER PRIMARY KEY CHECK (agent_id >= 1),
    owner_user_id     INTEGER NOT NULL CHECK (owner_user_id >= 1),
    class_id          INTEGER CHECK (class_id >= 1),
    name              TEXT NOT NULL,
    description       TEXT,
    system_prompt     TEXT,
    style_preset      TEXT NOT NULL CHECK (style_preset IN ('accurate', 'balanced', 'creative')),
    style_params      TEXT NOT NULL CHECK (json_type(style_params) = 'object'),
    generation_params TEXT NOT NULL CHECK (json_type(generation_params) = 'object'),
    updated_at        TEXT NOT NULL,
    deleted_at        TEXT
);

CREATE TABLE agent_examples (
    agent_id   INTEGER NOT NULL REFERENCES agents (agent_id) ON DELETE CASCADE,
    position   INTEGER NOT NULL CHECK (position >= 0),
    example_id INTEGER NOT NULL REFERENCES examples (example_id),
    PRIMARY KEY (agent_id, position),
    UNIQUE (agent_id, example_id)
);

CREATE TABLE practice_sessions (
    session_id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL CHECK (user_id >= 1),
    class_id   INTEGER CHECK (class_id >= 1),
    project_id INTEGER CHECK (project_id >= 1),
    agent_id   INTEGER CHECK (agent_id >= 1),
    title      TEXT CHECK (length(title) <= 200),
    notes      TEXT CHECK (length(notes) <= 20000),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX practice_sessions_by_user ON practice_sessions (user_id, session_id);

CREATE TABLE session_knowledge (
    session_id   INTEGER NOT NULL REFERENCES practice_sessions (session_id) ON DELETE CASCADE,
    position     INTEGER NOT NULL CHECK (position >= 0 AND position < 50),
    knowledge_id INTEGER NOT NULL CHECK (knowledge_id >= 1),
    PRIMARY KEY (session_id, position),
    UNIQUE (session_id, knowledge_id)
);

CREATE TABLE session_settings (
    setting_id        INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id        INTEGER NOT NULL UNIQUE REFERENCES practice_sessions (session_id) ON DELETE CASCADE,
    style_preset      TEXT NOT NULL CHECK (style_preset IN ('accurate', 'balanced', 'creative')),
    style_params      TEXT NOT NULL CHECK (json_type(style_params) = 'object'),
    generation_params TEXT NOT NULL CHECK (json_type(generation_params) = 'object'),
    agent_snapshot    TEXT NOT NULL CHECK (json_type(agent_snapshot) = 'object'),
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);

CREATE TABLE few_shot_links (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    setting_id INTEGER NOT NULL REFERENCES session_settings (setting_id) ON DELETE CASCADE,
    example_id INTEGER NOT NULL REFERENCES examples (example_id),
    sort_order INTEGER NOT NULL CHECK (sort_order >= 0),
    created_at TEXT NOT NULL,
    UNIQUE (setting_id, sort_order)
);

CREATE TABLE session_models (
    session_model_id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id       INTEGER NOT NULL REFERENCES practice_sessions (session_id) ON DELETE CASCADE,
    model_name       TEXT NOT NULL CHECK (length(model_name) > 0),
    sort_order       INTEGER NOT NULL CHECK (sort_order >= 0),
    created_at       TEXT NOT NULL,
    UNIQUE (session_id, sort_order)
);

CREATE TABLE responses (
    response_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    session_model_id INTEGER NOT NULL REFERENCES session_models (session_model_id) ON DELETE CASCADE,
    session_id       INTEGER NOT NULL REFERENCES practice_sessions (session_id) ON DELETE CASCADE,
    model_name       TEXT NOT NULL,
    prompt_text      TEXT NOT NULL,
    response_text    TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    token_usage      TEXT NOT NULL DEFAULT '{}' CHECK (json_type(token_usage) = 'object'),
    latency_ms       INTEGER CHECK (latency_ms >= 0)
);
CREATE INDEX responses_by_session ON responses (session_id, response_id);

-- Idempotency keys live in the database so every replica sees them.
-- created_at_us is Unix microseconds: comparable as a number on both engines.
CREATE TABLE idempotency_keys (
    user_id       INTEGER NOT NULL CHECK (user_id >= 1),
    idem_key      TEXT NOT NULL CHECK (length(idem_key) BETWEEN 1 AND 255),
    request_hash  TEXT NOT NULL,
    session_id    INTEGER REFERENCES practice_sessions (session_id) ON DELETE CASCADE,
    created_at_us INTEGER NOT NULL,
    PRIMARY KEY (user_id, idem_key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at_us);
