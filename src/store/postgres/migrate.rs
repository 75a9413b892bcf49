//! Versioned schema migrations (SPEC 12: "`tenure migrate` creates or
//! upgrades the schema; `serve` refuses a schema it does not know").
//!
//! Each migration is a SQL file under `migrations/`, embedded in the binary.
//! The table `schema_migrations` records each one applied: its version,
//! name, the SHA-256 of its text and when it was applied. A migration runs
//! in one transaction with its own `schema_migrations` row, so it applies
//! whole or not at all. No advisory lock (CockroachDB has none): two
//! `tenure migrate` at once both try, and the second to commit fails on the
//! row's primary key and changes nothing; running it again is a no-op.

use std::fmt;

use tokio_postgres::GenericClient;
use tokio_postgres::error::SqlState;

use crate::clock::UnixTime;

/// One schema change.
#[derive(Debug, PartialEq, Eq)]
pub struct Migration {
    /// 1, 2, 3, ... without gaps.
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    /// SHA-256 of the SQL text, hex: an applied migration whose file was
    /// edited afterwards is an unknown schema, not a silent difference.
    pub fn checksum(&self) -> String {
        ring::digest::digest(&ring::digest::SHA256, self.sql.as_bytes())
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Every migration this build knows, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "initial", sql: include_str!("../../../migrations/0001_initial.sql") },
    Migration { version: 2, name: "signing_keys", sql: include_str!("../../../migrations/0002_signing_keys.sql") },
    Migration { version: 3, name: "replicas", sql: include_str!("../../../migrations/0003_replicas.sql") },
    Migration { version: 4, name: "retired_names", sql: include_str!("../../../migrations/0004_retired_names.sql") },
    Migration { version: 5, name: "session_limits", sql: include_str!("../../../migrations/0005_session_limits.sql") },
    Migration {
        version: 6,
        name: "device_requests",
        sql: include_str!("../../../migrations/0006_device_requests.sql"),
    },
    Migration {
        version: 7,
        name: "nothing_per_process",
        sql: include_str!("../../../migrations/0007_nothing_per_process.sql"),
    },
    Migration {
        version: 8,
        name: "revocation_epoch",
        sql: include_str!("../../../migrations/0008_revocation_epoch.sql"),
    },
];

/// The schema version this build serves.
pub fn latest() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)";

/// What the database holds, compared with what this build knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchemaState {
    /// Exactly this build's schema.
    Current(i64),
    /// No `schema_migrations` table, or an empty one: never migrated.
    Empty,
    /// An older schema of this lineage: `tenure migrate` upgrades it.
    Behind { version: i64, latest: i64 },
    /// A schema from a newer tenure.
    Newer { version: i64, latest: i64 },
    /// Applied migrations this build does not recognise (another name or
    /// checksum for a version it knows, or gaps).
    Unknown { detail: String },
}

/// A schema `serve` refuses, worded with the versions and the fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaProblem(pub SchemaState);

impl fmt::Display for SchemaProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            SchemaState::Current(v) => write!(f, "schema version {v}, the current one"),
            SchemaState::Empty => write!(
                f,
                "no tenure schema (no schema_migrations table); this tenure needs schema version {}: \
                 run `tenure migrate` first",
                latest()
            ),
            SchemaState::Behind { version, latest } => write!(
                f,
                "schema version {version}, older than version {latest} this tenure needs: run `tenure migrate` \
                 to upgrade it"
            ),
            SchemaState::Newer { version, latest } => write!(
                f,
                "schema version {version}, newer than version {latest} this tenure knows: run a tenure at least as \
                 new as the one that migrated it (downgrades are not supported)"
            ),
            SchemaState::Unknown { detail } => write!(
                f,
                "a schema this tenure does not know ({detail}); this tenure needs schema version {}: point \
                 database_url at tenure's own database, or run `tenure migrate` on an empty one",
                latest()
            ),
        }
    }
}

#[derive(Debug)]
pub enum MigrateError {
    Pg(tokio_postgres::Error),
    Schema(SchemaProblem),
    /// Another `tenure migrate` applied the same migration at the same time.
    Raced(String),
}

impl From<tokio_postgres::Error> for MigrateError {
    fn from(e: tokio_postgres::Error) -> Self {
        MigrateError::Pg(e)
    }
}

/// One row of `schema_migrations`.
struct Applied {
    version: i64,
    name: String,
    checksum: String,
}

async fn applied(client: &impl GenericClient) -> Result<Option<Vec<Applied>>, tokio_postgres::Error> {
    // information_schema: PostgreSQL, CockroachDB and YugabyteDB all have it.
    let exists = client
        .query_opt(
            "SELECT 1 FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = 'schema_migrations'",
            &[],
        )
        .await?
        .is_some();
    if !exists {
        return Ok(None);
    }
    let rows = client.query("SELECT version, name, checksum FROM schema_migrations ORDER BY version", &[]).await?;
    rows.iter()
        .map(|r| Ok(Applied { version: r.try_get(0)?, name: r.try_get(1)?, checksum: r.try_get(2)? }))
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()
        .map(Some)
}

/// Compare the applied migrations with [`MIGRATIONS`].
fn compare(applied: Option<&[Applied]>, known: &[Migration]) -> SchemaState {
    let latest = known.last().map_or(0, |m| m.version);
    let Some(applied) = applied.filter(|a| !a.is_empty()) else { return SchemaState::Empty };
    for (i, a) in applied.iter().enumerate() {
        // The versions this build knows, in order (a version it does not
        // know follows the last one it does).
        let expected = known.get(i).map_or_else(
            || {
                let beyond = i64::try_from(i.saturating_sub(known.len())).unwrap_or(i64::MAX);
                known.last().map_or(0, |m| m.version).saturating_add(beyond).saturating_add(1)
            },
            |m| m.version,
        );
        if a.version != expected {
            return SchemaState::Unknown {
                detail: format!("schema_migrations has version {} where version {expected} should be", a.version),
            };
        }
        if let Some(m) = known.get(i)
            && (m.name != a.name || m.checksum() != a.checksum)
        {
            return SchemaState::Unknown {
                detail: format!(
                    "version {} was applied as {:?} with checksum {}, which is not this tenure's {:?}",
                    a.version,
                    a.name,
                    a.checksum.get(..12).unwrap_or(&a.checksum),
                    m.name
                ),
            };
        }
    }
    let version = applied.last().map_or(0, |a| a.version);
    if version > latest {
        SchemaState::Newer { version, latest }
    } else if version < latest {
        SchemaState::Behind { version, latest }
    } else {
        SchemaState::Current(version)
    }
}

/// The database's schema compared with this build's.
pub async fn schema_state(client: &impl GenericClient) -> Result<SchemaState, MigrateError> {
    let applied = applied(client).await?;
    Ok(compare(applied.as_deref(), MIGRATIONS))
}

/// Apply every migration the database lacks, each in its own transaction.
/// Refuses a newer or unknown schema. Returns what it applied.
pub async fn migrate(
    client: &mut tokio_postgres::Client,
    now: UnixTime,
) -> Result<Vec<&'static Migration>, MigrateError> {
    migrate_with(client, MIGRATIONS, now).await
}

async fn migrate_with(
    client: &mut tokio_postgres::Client,
    known: &'static [Migration],
    now: UnixTime,
) -> Result<Vec<&'static Migration>, MigrateError> {
    client.batch_execute(CREATE_TABLE).await?;
    let applied = applied(&*client).await?;
    let from = match compare(applied.as_deref(), known) {
        SchemaState::Current(_) => return Ok(Vec::new()),
        SchemaState::Empty => 0,
        SchemaState::Behind { version, .. } => version,
        other @ (SchemaState::Newer { .. } | SchemaState::Unknown { .. }) => {
            return Err(MigrateError::Schema(SchemaProblem(other)));
        }
    };
    let applied_at = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let mut done = Vec::new();
    for m in known.iter().filter(|m| m.version > from) {
        let tx = client.transaction().await?;
        tx.batch_execute(m.sql).await?;
        let recorded = tx
            .execute(
                "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)",
                &[&m.version, &m.name, &m.checksum(), &applied_at],
            )
            .await;
        match recorded {
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                return Err(MigrateError::Raced(format!(
                    "another `tenure migrate` applied migration {} ({}) at the same time; nothing was changed by \
                     this one: run `tenure migrate` again to check",
                    m.version, m.name
                )));
            }
            other => {
                other?;
            }
        }
        tx.commit().await?;
        done.push(m);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(version: i64, m: &Migration) -> Applied {
        Applied { version, name: m.name.to_owned(), checksum: m.checksum() }
    }

    static TWO: [Migration; 2] = [
        Migration { version: 1, name: "initial", sql: "CREATE TABLE a (x BIGINT);" },
        Migration { version: 2, name: "more", sql: "CREATE TABLE b (x BIGINT);" },
    ];

    #[test]
    fn versions_are_one_two_three_without_gaps() {
        let mut previous = 0;
        for m in MIGRATIONS {
            assert_eq!(m.version, previous + 1, "{}", m.name);
            assert!(!m.sql.trim().is_empty());
            previous = m.version;
        }
        assert_eq!(latest(), previous);
    }

    #[test]
    fn the_schema_state_names_the_versions() {
        assert_eq!(compare(None, &TWO), SchemaState::Empty);
        assert_eq!(compare(Some(&[]), &TWO), SchemaState::Empty);
        assert_eq!(compare(Some(&[row(1, &TWO[0])]), &TWO), SchemaState::Behind { version: 1, latest: 2 });
        assert_eq!(compare(Some(&[row(1, &TWO[0]), row(2, &TWO[1])]), &TWO), SchemaState::Current(2));
        assert_eq!(
            compare(Some(&[row(1, &TWO[0]), row(2, &TWO[1])]), &TWO[..1]),
            SchemaState::Newer { version: 2, latest: 1 }
        );
    }

    #[test]
    fn an_edited_or_foreign_migration_is_unknown() {
        let edited = Applied { version: 1, name: "initial".into(), checksum: "0".repeat(64) };
        assert!(matches!(compare(Some(&[edited]), &TWO), SchemaState::Unknown { .. }));
        let renamed = Applied { version: 1, name: "theirs".into(), checksum: TWO[0].checksum() };
        assert!(matches!(compare(Some(&[renamed]), &TWO), SchemaState::Unknown { .. }));
        let gap = [row(1, &TWO[0]), row(3, &TWO[1])];
        assert!(matches!(compare(Some(&gap), &TWO), SchemaState::Unknown { .. }));
    }

    #[test]
    fn problems_say_what_to_run() {
        let empty = SchemaProblem(SchemaState::Empty).to_string();
        assert!(empty.contains("run `tenure migrate`"), "{empty}");
        let behind = SchemaProblem(SchemaState::Behind { version: 1, latest: 2 }).to_string();
        assert!(behind.contains("version 1") && behind.contains("version 2") && behind.contains("tenure migrate"));
        let newer = SchemaProblem(SchemaState::Newer { version: 3, latest: 2 }).to_string();
        assert!(newer.contains("version 3") && newer.contains("newer"), "{newer}");
    }
}
