-- The revocation epoch (SPEC 12, issue 21): a counter that moves in the
-- same transaction as every change that can end a family or a session, so a
-- replica may keep the families it read and trust them exactly as long as
-- the counter has not moved (`store/postgres/views.rs`). Triggers rather
-- than code: no write path, present or future, can forget it.
--
-- What moves it: a family's or a session's `revoked` changing, a session's
-- `seq` changing (a user marker covers sessions by `seq`), any change to
-- the user markers, and any deletion of families, sessions or markers. A
-- rotation (generation and activity) does not: it is guarded by the
-- family's generation instead. Row-level triggers only (what CockroachDB
-- also has); a sweep that deletes nothing moves nothing.
INSERT INTO cache_epochs (name, epoch) VALUES ('revocations', 0) ON CONFLICT (name) DO NOTHING;

CREATE FUNCTION tenure_revocation_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE cache_epochs SET epoch = epoch + 1 WHERE name = 'revocations';
    RETURN NULL;
END
$$;

CREATE TRIGGER families_revoked AFTER UPDATE ON families FOR EACH ROW
    WHEN (OLD.body->'revoked' IS DISTINCT FROM NEW.body->'revoked')
    EXECUTE FUNCTION tenure_revocation_moved();
CREATE TRIGGER families_deleted AFTER DELETE ON families FOR EACH ROW
    EXECUTE FUNCTION tenure_revocation_moved();

CREATE TRIGGER user_sessions_revoked AFTER UPDATE ON user_sessions FOR EACH ROW
    WHEN (OLD.body->'revoked' IS DISTINCT FROM NEW.body->'revoked' OR OLD.seq IS DISTINCT FROM NEW.seq)
    EXECUTE FUNCTION tenure_revocation_moved();
CREATE TRIGGER user_sessions_deleted AFTER DELETE ON user_sessions FOR EACH ROW
    EXECUTE FUNCTION tenure_revocation_moved();

CREATE TRIGGER user_markers_changed AFTER INSERT OR UPDATE OR DELETE ON user_markers FOR EACH ROW
    EXECUTE FUNCTION tenure_revocation_moved();
