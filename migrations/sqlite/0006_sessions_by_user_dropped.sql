-- Every query on a user's sessions either names the session (the primary
-- key) or lists them by recency (practice_sessions_by_recency, which leads
-- with user_id too): this index only cost each create an index entry.
DROP INDEX practice_sessions_by_user;
