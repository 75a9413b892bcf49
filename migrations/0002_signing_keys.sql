-- tenure's PostgreSQL schema, version 2: signing keys shared by every
-- replica (docs/operations.md, "Signing keys with PostgreSQL").
--
-- One row per key of the manifest (`keys.json` with the sled store), in
-- manifest order (`position`): `record` is the manifest entry as JSON, the
-- private key (PKCS#8 DER) is sealed with AES-256-GCM under a key derived
-- from keys/master.key, with the kid as associated data; `sealed` and
-- `nonce` are NULL once the key is revoked (its private half deleted). The
-- master key never enters the database.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    position BIGINT NOT NULL,
    record JSONB NOT NULL,
    sealed BYTEA,
    nonce BYTEA
);

-- Counters bumped in the same transaction as any change they stand for;
-- each replica compares them every couple of seconds (LISTEN/NOTIFY only
-- speeds that up). Row 'signing_keys': the key set.
CREATE TABLE epochs (
    name TEXT PRIMARY KEY,
    epoch BIGINT NOT NULL
);
INSERT INTO epochs (name, epoch) VALUES ('signing_keys', 0);

-- Leases: one replica at a time does a piece of shared work (row 'keys':
-- creating and rotating signing keys). Taken with a conditional update
-- (`... WHERE owner = $me OR until < $now`), held until `until` (Unix
-- seconds) at most.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until BIGINT NOT NULL
);
