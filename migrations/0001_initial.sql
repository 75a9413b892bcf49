-- tenure's PostgreSQL schema, version 1 (SPEC 6, 12).
--
-- One table per kind of record. A record's body is JSONB (the same serde
-- form the sled store keeps); a field becomes a real column only where the
-- store filters, orders or locks on it. Times are Unix seconds (BIGINT).
-- Only plain tables, BIGINT/TEXT/BYTEA/JSONB, b-tree indexes and sequences:
-- what CockroachDB and YugabyteDB offer too (no advisory locks, no
-- LISTEN/NOTIFY, no triggers, no partial indexes).

-- One counter for session sequences and user revocation markers: a marker
-- revokes every session of its user whose sequence is at or below its own
-- (one write, whatever the number of sessions).
CREATE SEQUENCE revocation_seq;

-- Singletons: the admin-set session policy layer, the policy history.
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    body JSONB NOT NULL
);

-- Authorization codes, keyed by the SHA-256 of the code; kept for
-- CODE_RECORD_TTL after issue so a replay is recognised.
CREATE TABLE auth_codes (
    code_hash BYTEA PRIMARY KEY,
    body JSONB NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX auth_codes_expires_at ON auth_codes (expires_at);

-- User sessions (the `sid`). `seq` is assigned on first insert from
-- revocation_seq and never changes.
CREATE TABLE user_sessions (
    sid TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    seq BIGINT NOT NULL,
    body JSONB NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX user_sessions_username ON user_sessions (username);
CREATE INDEX user_sessions_expires_at ON user_sessions (expires_at);

-- Refresh-token families. `generation` is the compare-and-set guard of
-- every transition; `in_session` is false once a newer family of the same
-- client superseded it (it stays on record for the audit trail).
CREATE TABLE families (
    id TEXT PRIMARY KEY,
    sid TEXT NOT NULL,
    client_id TEXT NOT NULL,
    generation BIGINT NOT NULL,
    in_session BOOLEAN NOT NULL,
    body JSONB NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX families_sid ON families (sid);
CREATE INDEX families_client_id ON families (client_id);
CREATE INDEX families_expires_at ON families (expires_at);

-- "Every session of `username` with a sequence up to `seq` is revoked."
CREATE TABLE user_markers (
    username TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL,
    body JSONB NOT NULL
);
CREATE INDEX user_markers_revoked_at ON user_markers (revoked_at);

-- Users and clients created through the admin API.
CREATE TABLE users (
    username TEXT PRIMARY KEY,
    body JSONB NOT NULL
);
CREATE TABLE clients (
    id TEXT PRIMARY KEY,
    body JSONB NOT NULL
);

-- The audit log; ids grow with time, pages run newest first.
CREATE SEQUENCE audit_events_id;
CREATE TABLE audit_events (
    id BIGINT PRIMARY KEY DEFAULT nextval('audit_events_id'),
    at BIGINT NOT NULL,
    body JSONB NOT NULL
);
CREATE INDEX audit_events_at ON audit_events (at);

-- The back-channel logout outbox. A replica that takes an entry leases it
-- (`lease_owner`, `lease_until`) so each delivery is attempted by one
-- replica at a time and survives that replica's death (SPEC 12).
CREATE SEQUENCE logout_outbox_id;
CREATE TABLE logout_outbox (
    id BIGINT PRIMARY KEY DEFAULT nextval('logout_outbox_id'),
    next_attempt_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    body JSONB NOT NULL
);
CREATE INDEX logout_outbox_due ON logout_outbox (next_attempt_at, id);

-- Revocation feed (SSF): one stream per receiving client, and the Security
-- Event Tokens queued for it, in order.
CREATE TABLE ssf_streams (
    client_id TEXT PRIMARY KEY,
    body JSONB NOT NULL
);
CREATE SEQUENCE ssf_queue_id;
CREATE TABLE ssf_queue (
    id BIGINT PRIMARY KEY DEFAULT nextval('ssf_queue_id'),
    client_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    iat BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    body JSONB NOT NULL
);
CREATE INDEX ssf_queue_client ON ssf_queue (client_id, id);
CREATE INDEX ssf_queue_client_jti ON ssf_queue (client_id, jti);
CREATE INDEX ssf_queue_iat ON ssf_queue (iat);
