-- Nothing per process (SPEC 12): what the pages and DPoP remember between
-- requests lives here, so that any replica answers any request behind a
-- plain round-robin balancer. Every row expires on its own (`expires_at`,
-- Unix seconds; the sweeper deletes what is past it).

-- Console sessions, by the SHA-256 of their cookie. `sealed` is the
-- console's tokens (or its sign-in in progress) under AES-256-GCM with a key
-- derived from the cookie itself, which the database never sees. `version`
-- counts replacements (compare-and-swap between replicas); `pending` rows
-- go first when the table is full.
CREATE TABLE console_sessions (
    key BYTEA PRIMARY KEY,
    version BIGINT NOT NULL,
    pending BOOLEAN NOT NULL,
    created BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    sealed BYTEA NOT NULL
);
CREATE INDEX console_sessions_by_age ON console_sessions (pending DESC, created);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);

-- Sign-ins waiting for their user to end a session (SPEC 14, `ask`), by the
-- SHA-256 of their id, bound to the SHA-256 of the browser's secret. No
-- password.
CREATE TABLE pending_sign_ins (
    key BYTEA PRIMARY KEY,
    browser BYTEA NOT NULL,
    expires_at BIGINT NOT NULL,
    body JSONB NOT NULL
);
CREATE INDEX pending_sign_ins_by_expiry ON pending_sign_ins (expires_at);

-- DPoP proofs seen (RFC 9449 11.1), by a 128-bit digest of (key
-- thumbprint, jti), until their `iat` is too old to be accepted again.
CREATE TABLE dpop_proofs (
    key BYTEA PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX dpop_proofs_by_expiry ON dpop_proofs (expires_at);
