-- Free-form objects are json, not jsonb: jsonb can't hold \u0000, which a
-- client may put in any string or key of an object it sends, and json
-- keeps an object as it was written, as SQLite does.
-- Nothing queries inside these objects, so jsonb's parsed form bought
-- nothing but the parsing on every write.

ALTER TABLE examples DROP CONSTRAINT examples_meta_check;
ALTER TABLE examples ALTER COLUMN meta DROP DEFAULT;
ALTER TABLE examples ALTER COLUMN meta TYPE json USING meta::json;
ALTER TABLE examples ALTER COLUMN meta SET DEFAULT '{}';
ALTER TABLE examples ADD CHECK (json_typeof(meta) = 'object');

ALTER TABLE agents DROP CONSTRAINT agents_style_params_check;
ALTER TABLE agents DROP CONSTRAINT agents_generation_params_check;
ALTER TABLE agents
    ALTER COLUMN style_params TYPE json USING style_params::json,
    ALTER COLUMN generation_params TYPE json USING generation_params::json;
ALTER TABLE agents
    ADD CHECK (json_typeof(style_params) = 'object'),
    ADD CHECK (json_typeof(generation_params) = 'object');

ALTER TABLE session_settings DROP CONSTRAINT session_settings_style_params_check;
ALTER TABLE session_settings DROP CONSTRAINT session_settings_generation_params_check;
ALTER TABLE session_settings DROP CONSTRAINT session_settings_agent_snapshot_check;
ALTER TABLE session_settings
    ALTER COLUMN style_params TYPE json USING style_params::json,
    ALTER COLUMN generation_params TYPE json USING generation_params::json,
    ALTER COLUMN agent_snapshot TYPE json USING agent_snapshot::json;
ALTER TABLE session_settings
    ADD CHECK (json_typeof(style_params) = 'object'),
    ADD CHECK (json_typeof(generation_params) = 'object'),
    ADD CHECK (json_typeof(agent_snapshot) = 'object');

ALTER TABLE responses DROP CONSTRAINT responses_token_usage_check;
ALTER TABLE responses ALTER COLUMN token_usage DROP DEFAULT;
ALTER TABLE responses ALTER COLUMN token_usage TYPE json USING token_usage::json;
ALTER TABLE responses ALTER COLUMN token_usage SET DEFAULT '{}';
ALTER TABLE responses ADD CHECK (json_typeof(token_usage) = 'object');
