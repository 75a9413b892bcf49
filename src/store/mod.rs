//! Persistence behind one trait, so the embedded sled store and a later
//! PostgreSQL store give the same semantics (SPEC 6).
//!
//! Contract of every implementation:
//! - A method that changes security-relevant state returns only once the
//!   change is durable (SPEC 6: "durable before the response").
//! - Records written with an expiry are removed by [`Store::sweep_expired`]
//!   once that time has passed, so the store does not grow without bound.

pub mod sled;

use crate::clock::UnixTime;
use crate::policy::PolicyLayer;

pub use self::sled::SledStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store I/O failed: {0}")]
    Io(String),
    #[error("stored record {what} is corrupt: {message}")]
    Corrupt { what: String, message: String },
    #[error("store is shutting down")]
    Closed,
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The kinds of record that expire, each in its own keyspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Expiring {
    AuthorizationCode,
    Family,
    UserSession,
}

impl Expiring {
    pub const ALL: [Expiring; 3] = [Expiring::AuthorizationCode, Expiring::Family, Expiring::UserSession];

    fn tag(self) -> u8 {
        match self {
            Expiring::AuthorizationCode => 1,
            Expiring::Family => 2,
            Expiring::UserSession => 3,
        }
    }

    fn tree_name(self) -> &'static str {
        match self {
            Expiring::AuthorizationCode => "codes",
            Expiring::Family => "families",
            Expiring::UserSession => "sessions",
        }
    }

    fn from_tag(tag: u8) -> Option<Expiring> {
        Expiring::ALL.into_iter().find(|e| e.tag() == tag)
    }
}

/// What the issuer keeps.
pub trait Store: Send + Sync + 'static {
    /// Whether the store answers reads and writes (`/readyz`).
    fn check(&self) -> impl std::future::Future<Output = Result<()>> + Send;

    /// The session settings set through the admin API (SPEC 3 precedence:
    /// they win over file and environment), empty when none are set.
    fn admin_policy(&self) -> Result<PolicyLayer>;

    /// Replace the admin-set session settings; durable on return.
    fn set_admin_policy(&self, layer: &PolicyLayer) -> impl std::future::Future<Output = Result<()>> + Send;

    /// Store `value` under `key` in the keyspace of `kind`, to be swept once
    /// `expires_at` has passed; durable on return.
    fn put_expiring(
        &self,
        kind: Expiring,
        key: &[u8],
        value: &[u8],
        expires_at: UnixTime,
    ) -> impl std::future::Future<Output = Result<()>> + Send;

    /// Read a record of `kind`.
    fn get_expiring(&self, kind: Expiring, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Remove every record whose expiry is at or before `now`. Returns how
    /// many were removed.
    fn sweep_expired(&self, now: UnixTime) -> impl std::future::Future<Output = Result<usize>> + Send;
}
