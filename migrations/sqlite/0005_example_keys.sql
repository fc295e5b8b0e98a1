-- CreateExample honours Idempotency-Key: the key names the example made.
ALTER TABLE idempotency_keys ADD COLUMN example_id INTEGER REFERENCES examples (example_id) ON DELETE CASCADE;
