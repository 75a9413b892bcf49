-- Device authorization requests (SPEC 15, RFC 8628): one row per
-- `POST /device_authorization`, keyed by the SHA-256 of its device code and
-- found also by the SHA-256 of its user code (never the codes themselves).
-- A poll locks the row (FOR UPDATE) before the session and the families it
-- touches, as code redemption locks the code first, so N racing polls take
-- turns and exactly one redeems an approved request. Kept until a while
-- after the request expires (`expires_at`), then swept.
CREATE TABLE device_requests (
    device_hash BYTEA PRIMARY KEY,
    user_hash BYTEA NOT NULL UNIQUE,
    body JSONB NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX device_requests_expires_at ON device_requests (expires_at);
