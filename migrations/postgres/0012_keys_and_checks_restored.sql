-- The keys and value checks that 0007 and 0008 dropped for speed come back,
-- so PostgreSQL holds the same data to the same rules as SQLite: a
-- session's rows belong to it (and go with it, by ON DELETE CASCADE rather
-- than a trigger), and no row holds a value the API would refuse.
-- The cost, measured with practice-bench on the create path, is in
-- docs/decisions/0005-keys-and-checks.md.

DROP TRIGGER practice_sessions_remove_rows ON practice_sessions;
DROP FUNCTION remove_session_rows();

ALTER TABLE session_knowledge
    ADD CONSTRAINT session_knowledge_session_id_fkey FOREIGN KEY (session_id)
        REFERENCES practice_sessions (session_id) ON DELETE CASCADE,
    ADD CONSTRAINT session_knowledge_position_check CHECK (position >= 0 AND position < 50),
    ADD CONSTRAINT session_knowledge_knowledge_id_check CHECK (knowledge_id >= 1);

ALTER TABLE session_settings
    ADD CONSTRAINT session_settings_session_id_fkey FOREIGN KEY (session_id)
        REFERENCES practice_sessions (session_id) ON DELETE CASCADE,
    ADD CONSTRAINT session_settings_style_preset_check
        CHECK (style_preset IN ('accurate', 'balanced', 'creative')),
    ADD CONSTRAINT session_settings_style_params_check CHECK (json_typeof(style_params) = 'object'),
    ADD CONSTRAINT session_settings_generation_params_check
        CHECK (json_typeof(generation_params) = 'object'),
    ADD CONSTRAINT session_settings_agent_snapshot_check
        CHECK (json_typeof(agent_snapshot) = 'object');

ALTER TABLE few_shot_links
    ADD CONSTRAINT few_shot_links_setting_id_fkey FOREIGN KEY (setting_id)
        REFERENCES session_settings (setting_id) ON DELETE CASCADE,
    ADD CONSTRAINT few_shot_links_sort_order_check CHECK (sort_order >= 0);

ALTER TABLE session_models
    ADD CONSTRAINT session_models_session_id_fkey FOREIGN KEY (session_id)
        REFERENCES practice_sessions (session_id) ON DELETE CASCADE,
    ADD CONSTRAINT session_models_model_name_check CHECK (char_length(model_name) > 0),
    ADD CONSTRAINT session_models_sort_order_check CHECK (sort_order >= 0);

ALTER TABLE practice_sessions
    ADD CONSTRAINT practice_sessions_user_id_check CHECK (user_id >= 1),
    ADD CONSTRAINT practice_sessions_class_id_check CHECK (class_id >= 1),
    ADD CONSTRAINT practice_sessions_project_id_check CHECK (project_id >= 1),
    ADD CONSTRAINT practice_sessions_agent_id_check CHECK (agent_id >= 1),
    ADD CONSTRAINT practice_sessions_title_check CHECK (char_length(title) <= 200),
    ADD CONSTRAINT practice_sessions_notes_check CHECK (char_length(notes) <= 20000);
