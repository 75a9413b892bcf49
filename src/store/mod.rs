//! Persistence behind one trait, so the embedded sled store and a later
//! PostgreSQL store give the same semantics (SPEC 6).
//!
//! Contract of every implementation:
//! - A method that changes security-relevant state returns only once the
//!   change is durable (SPEC 6: "durable before the response").
//! - Records written with an expiry are removed by [`Store::sweep_expired`]
//!   once that time has passed, so the store does not grow without bound.

pub mod sled;

use crate::audit::AuditEvent;
use crate::clock::UnixTime;
use crate::logout::Delivery;
use crate::oauth::client_spec::StoredClient;
use crate::policy::{PolicyHistory, PolicyLayer};
use crate::session::Revoked;
use crate::session::code::AuthCode;
use crate::session::family::{Family, RefreshDecision};
use crate::session::user_session::UserSession;
use crate::ssf::{QueuedSet, Stream};
use crate::user::User;

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
    /// `sid || family id` -> (): the families of a session.
    SessionFamily,
    /// `username || 0 || sid` -> (): the sessions of a user.
    UserIndex,
}

impl Expiring {
    pub const ALL: [Expiring; 5] = [
        Expiring::AuthorizationCode,
        Expiring::Family,
        Expiring::UserSession,
        Expiring::SessionFamily,
        Expiring::UserIndex,
    ];

    fn tag(self) -> u8 {
        match self {
            Expiring::AuthorizationCode => 1,
            Expiring::Family => 2,
            Expiring::UserSession => 3,
            Expiring::SessionFamily => 4,
            Expiring::UserIndex => 5,
        }
    }

    fn tree_name(self) -> &'static str {
        match self {
            Expiring::AuthorizationCode => "codes",
            Expiring::Family => "families",
            Expiring::UserSession => "sessions",
            Expiring::SessionFamily => "session_families",
            Expiring::UserIndex => "user_sessions",
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

    /// The global policies in force so far (see `PolicyHistory`).
    fn policy_history(&self) -> Result<Option<PolicyHistory>>;

    /// Replace the policy history; durable on return.
    fn set_policy_history(&self, history: &PolicyHistory) -> impl std::future::Future<Output = Result<()>> + Send;

    /// Create or replace a user session, kept until `keep_until`; durable.
    fn put_session(
        &self,
        session: &UserSession,
        keep_until: UnixTime,
    ) -> impl std::future::Future<Output = Result<()>> + Send;

    fn session(&self, sid: &str) -> Result<Option<UserSession>>;

    /// Apply `change` to session `sid` atomically (it returns whether it
    /// changed anything); durable on return. Returns the session as stored
    /// afterwards, `None` when there is no such session.
    fn update_session<F>(
        &self,
        sid: &str,
        change: F,
    ) -> impl std::future::Future<Output = Result<Option<UserSession>>> + Send
    where
        F: Fn(&mut UserSession) -> bool + Send + Sync;

    /// The families created in session `sid`.
    fn session_families(&self, sid: &str) -> Result<Vec<Family>>;

    /// Store a fresh authorization code under `key`; durable.
    fn put_code(&self, key: &[u8], code: &AuthCode) -> impl std::future::Future<Output = Result<()>> + Send;

    fn code(&self, key: &[u8]) -> Result<Option<AuthCode>>;

    /// Redeem the code under `key`, creating `family` (kept until
    /// `keep_until`), atomically: a second redemption revokes the family the
    /// first one created (RFC 6749 4.1.2). In the same transaction the
    /// family joins its session's families of its client
    /// ([`UserSession::admit_family`] with
    /// [`MAX_FAMILIES_PER_CLIENT`](crate::session::user_session::MAX_FAMILIES_PER_CLIENT)):
    /// the ones it supersedes are revoked (reason `superseded`) and leave the
    /// session's family index, and the session records the activity. Durable
    /// on return, also when the answer is a replay.
    fn redeem_code(
        &self,
        key: &[u8],
        family: &Family,
        keep_until: UnixTime,
        now: UnixTime,
    ) -> impl std::future::Future<Output = Result<Redemption>> + Send;

    fn family(&self, id: &str) -> Result<Option<Family>>;

    /// A user kept in the store (admin-created), `None` when unknown.
    fn user(&self, username: &str) -> Result<Option<User>>;

    /// Create or replace a stored user; durable.
    fn put_user(&self, user: &User) -> impl std::future::Future<Output = Result<()>> + Send;

    /// Delete a stored user; durable. Whether there was one.
    fn delete_user(&self, username: &str) -> impl std::future::Future<Output = Result<bool>> + Send;

    /// Every stored (admin-created) user, sorted by username.
    fn users(&self) -> Result<Vec<User>>;

    /// Create or replace (`Some`) or delete (`None`) stored user `username`
    /// and append `event`; with `revoke`, also revoke every session the user
    /// has (the marker), queue the back-channel fan-out and queue `sets`
    /// (the revocation feed's events). One atomic, durable step: after a
    /// crash either all of it happened or none. Returns whether a stored
    /// user existed before.
    fn write_user(
        &self,
        username: &str,
        user: Option<&User>,
        revoke: Option<Revoked>,
        sets: &[QueuedSet],
        event: &AuditEvent,
    ) -> impl std::future::Future<Output = Result<bool>> + Send;

    /// The clients created through the admin API, sorted by id.
    fn clients(&self) -> Result<Vec<StoredClient>>;

    /// Create or replace (`Some`) or delete (`None`) stored client `id` and
    /// append `event`, atomically; durable. Whether one existed before.
    fn write_client(
        &self,
        id: &str,
        client: Option<&StoredClient>,
        event: &AuditEvent,
    ) -> impl std::future::Future<Output = Result<bool>> + Send;

    /// Every user session on record (revoked ones included), for the
    /// settings preview.
    fn all_sessions(&self) -> Result<Vec<UserSession>>;

    /// Every family on record of client `client_id`.
    fn client_families(&self, client_id: &str) -> Result<Vec<Family>>;

    /// Every session of `username` still on record (revoked ones included).
    fn user_sessions(&self, username: &str) -> Result<Vec<UserSession>>;

    /// Revoke every session `username` has now, in one write whatever their
    /// number (a marker checked whenever a session is read); durable.
    /// Returns the marker's sequence: sessions up to it are revoked.
    fn revoke_user_sessions(
        &self,
        username: &str,
        revoked: Revoked,
    ) -> impl std::future::Future<Output = Result<u64>> + Send;

    /// Revoke family `id` (no-op when already revoked); durable. Returns the
    /// family as stored afterwards.
    fn revoke_family(
        &self,
        id: &str,
        revoked: Revoked,
    ) -> impl std::future::Future<Output = Result<Option<Family>>> + Send;

    /// Append an event to the audit log; durable.
    fn append_audit(&self, event: &AuditEvent) -> impl std::future::Future<Output = Result<()>> + Send;

    /// Append an event to the audit log and return its id; durable.
    fn append_audit_id(&self, event: &AuditEvent) -> impl std::future::Future<Output = Result<u64>> + Send;

    /// Replace audit event `id` (an aggregated record being counted up).
    /// Not flushed before returning: a crash may lose the latest counts,
    /// which keeps a flood of refused attempts from costing a flush each.
    /// `false` when there is no such event (pruned).
    fn replace_audit(&self, id: u64, event: &AuditEvent) -> impl std::future::Future<Output = Result<bool>> + Send;

    /// Drop audit events that happened before `before`, and user markers
    /// written before `markers_before` (every session they cover has expired
    /// by then). Returns how many were removed.
    fn prune_history(
        &self,
        before: UnixTime,
        markers_before: UnixTime,
    ) -> impl std::future::Future<Output = Result<usize>> + Send;

    /// Audit events newest first, strictly older than the event `before`.
    fn audit_page(&self, before: Option<u64>, limit: usize) -> Result<Vec<(u64, AuditEvent)>>;

    /// Queue back-channel logout deliveries; durable.
    fn enqueue_deliveries(&self, deliveries: &[Delivery]) -> impl std::future::Future<Output = Result<()>> + Send;

    /// Deliveries whose next attempt is due at `now`, oldest first.
    fn due_deliveries(&self, now: UnixTime, limit: usize) -> Result<Vec<(u64, Delivery)>>;

    /// Replace delivery `id` (new attempt count and time), or drop it when
    /// `next` is `None` (delivered, or given up); durable.
    fn finish_attempt(
        &self,
        id: u64,
        old: &Delivery,
        next: Option<&Delivery>,
    ) -> impl std::future::Future<Output = Result<()>> + Send;

    /// Every SSF event stream (SPEC 13), one per receiving client.
    fn ssf_streams(&self) -> Result<Vec<Stream>>;

    /// The event stream of receiving client `client_id`.
    fn ssf_stream(&self, client_id: &str) -> Result<Option<Stream>>;

    /// Create or replace the stream of `stream.client_id`; durable.
    fn put_ssf_stream(&self, stream: &Stream) -> impl std::future::Future<Output = Result<()>> + Send;

    /// Delete the stream of `client_id` and every event queued for it, in
    /// one step; durable. Whether there was one.
    fn delete_ssf_stream(&self, client_id: &str) -> impl std::future::Future<Output = Result<bool>> + Send;

    /// Queue Security Events, each for the stream of its `client_id`;
    /// durable.
    fn enqueue_sets(&self, sets: &[QueuedSet]) -> impl std::future::Future<Output = Result<()>> + Send;

    /// Up to `limit` events queued for the stream of `client_id`, oldest
    /// first, each with its queue id.
    fn queued_sets(&self, client_id: &str, limit: usize) -> Result<Vec<(u64, QueuedSet)>>;

    /// Remove the events with these `jti`s from the queue of `client_id`
    /// (acknowledged, or delivered); durable. How many were removed.
    fn remove_sets(&self, client_id: &str, jtis: &[String]) -> impl std::future::Future<Output = Result<usize>> + Send;

    /// Replace queued event `id` (a failed push, rescheduled); durable.
    fn reschedule_set(&self, id: u64, next: &QueuedSet) -> impl std::future::Future<Output = Result<()>> + Send;

    /// Drop every event queued for `client_id` (its stream was disabled);
    /// durable.
    fn clear_sets(&self, client_id: &str) -> impl std::future::Future<Output = Result<usize>> + Send;

    /// Drop queued events issued before `before`; durable. How many.
    fn prune_sets(&self, before: UnixTime) -> impl std::future::Future<Output = Result<usize>> + Send;

    /// Run `decide` on family `id` and its session in one transaction and
    /// store its outcome (a rotation, or a revocation on reuse); a rotation
    /// also records activity on the session (`last_active`, atomically).
    /// Durable on return. `None` when there is no such family.
    fn refresh<F>(
        &self,
        id: &str,
        decide: F,
    ) -> impl std::future::Future<Output = Result<Option<RefreshDecision>>> + Send
    where
        F: Fn(&Family, Option<&UserSession>) -> RefreshDecision + Send + Sync;
}

/// The outcome of [`Store::redeem_code`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redemption {
    /// The family is created; `superseded` are the older families of the
    /// same session and client it replaced, now revoked.
    Redeemed {
        superseded: Vec<Family>,
    },
    /// The code was redeemed before; the family it created (if any) is now
    /// revoked.
    Replayed {
        revoked_family: Option<String>,
    },
    NotFound,
}
