-- The session limit (SPEC 14): one row per user who signed in under a
-- `session.max_sessions` limit. A sign-in under the limit upserts its
-- user's row first (a row lock held to the end of its transaction), then
-- reads the user's sessions and decides; so two sign-ins of one user take
-- turns and the second sees the session the first stored (rows another
-- transaction is still inserting cannot be locked, this row can). `signins`
-- only counts, so that the upsert always writes.
CREATE TABLE session_limit_locks (
    username TEXT PRIMARY KEY,
    signins BIGINT NOT NULL
);
