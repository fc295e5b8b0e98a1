-- Tokens spent per subject ('user:42', 'class:3'), UTC day ('2026-12-05')
-- and model: what the daily budgets and GetUsage read. One row per
-- subject, day and model, added to as answers end; counted here rather
-- than summed from responses so a budget check reads a few rows.
CREATE TABLE usage_daily (
    subject           TEXT NOT NULL,
    day               TEXT NOT NULL,
    model_name        TEXT NOT NULL,
    answers           BIGINT NOT NULL,
    prompt_tokens     BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    -- What the answers cost, in millionths of a US dollar, where the
    -- models file gives the model's prices.
    cost_micros       BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (subject, day, model_name)
);
-- Each answer keeps its cost where its model has prices.
ALTER TABLE responses ADD COLUMN cost_micros BIGINT;
