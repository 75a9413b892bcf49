-- Coordination of several tenure replicas on one database (SPEC 12,
-- issue #9): leases, throttles counted in the database, and the epoch that
-- tells every replica its caches are stale. Plain tables and b-tree
-- indexes only (CockroachDB and YugabyteDB have them too).

-- Leases: one row per periodic job that only one replica may run at a time
-- (the sweeper, the pruners, key rotation). A replica takes a lease with one
-- conditional UPDATE ("... WHERE name = $1 AND (owner = $me OR until <=
-- $now)"); no advisory locks. IF NOT EXISTS: the key-rotation migration may
-- have created it already.
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until BIGINT NOT NULL
);

-- Authentication throttles shared by every replica: failed sign-ins per
-- (user, address) and per address, failed client authentication per
-- (client, address). `key` is the SHA-256 digest of what is counted (never
-- the attacker's text); `failures` counts within the window that started at
-- `window_start`; `strikes` is the lock backoff exponent. Only failures write.
CREATE TABLE throttles (
    key BYTEA PRIMARY KEY,
    failures BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    strikes BIGINT NOT NULL,
    locked_until BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX throttles_expires_at ON throttles (expires_at);

-- The epoch of what every replica caches (`config`: the admin settings,
-- the policy history and the clients created through the admin API). A
-- change bumps it in its own transaction; each replica compares the epoch
-- it loaded with this one every second, and at once on a NOTIFY
-- `tenure_cache` where the database has LISTEN/NOTIFY (PostgreSQL does,
-- CockroachDB does not: the periodic check alone suffices there).
CREATE TABLE cache_epochs (
    name TEXT PRIMARY KEY,
    epoch BIGINT NOT NULL
);
INSERT INTO cache_epochs (name, epoch) VALUES ('config', 0);
