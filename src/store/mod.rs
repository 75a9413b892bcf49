//! Persistence behind one trait, so the embedded sled store and a later
//! PostgreSQL store give the same semantics (SPEC 6).
//!
//! Contract of every implementation:
//! - A method that changes security-relevant state returns only once the
//!   change is durable (SPEC 6: "durable before the response").
//! - Records written with an expiry are removed by [`Store::sweep_expired`]
//!   once that time has passed, so the store does not grow without bound.

pub mod epoch_gate;
pub mod key_store;
pub mod marker;
pub mod postgres;
pub mod sled;
mod throttle;

use crate::audit::AuditEvent;
use crate::clock::UnixTime;
use crate::logout::Delivery;
use crate::oauth::client_spec::StoredClient;
use crate::oauth::throttle::{ThrottleKey, ThrottleRules, ThrottleState};
use crate::policy::{GroupPolicy, PolicyHistory, PolicyLayer};
use crate::session::Revoked;
use crate::session::code::AuthCode;
use crate::session::device::{Approval, DeviceRequest};
use crate::session::family::{Family, RefreshDecision};
use crate::session::limit::Admit;
use crate::session::user_session::UserSession;
use crate::ssf::{QueuedSet, SignedSet, Stream};
use crate::user::User;

pub use self::postgres::PgStore;
pub use self::sled::SledStore;

use std::future::Future;

#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store I/O failed: {0}")]
    Io(String),
    #[error("stored record {what} is corrupt: {message}")]
    Corrupt { what: String, message: String },
    #[error("store is shutting down")]
    Closed,
    /// The database does not answer (down, restarting, failing over,
    /// unreachable, or slower than the statement timeout): nothing was
    /// done, or a commit's outcome is unknown. The request is answered
    /// `503` with `Retry-After` (SPEC 12), never as a success; the pool
    /// reconnects by itself.
    #[error("the database does not answer: {0}")]
    Unavailable(String),
    /// The store cannot hold a value the request carried (PostgreSQL text
    /// cannot hold NUL): the caller's mistake, a 400, never a 500. Input
    /// validation refuses such values first; this is the safety net.
    #[error("a value holds a character that cannot be stored (such as NUL): {0}")]
    Refused(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// What a transition writes beside its own state, in the same atomic,
/// durable step: its audit events (the event log), the back-channel
/// logouts it queues (the outbox) and the revocation-feed events (SPEC 13).
/// After a crash either all of it is there, with the state change, or none.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Effects {
    pub events: Vec<AuditEvent>,
    pub deliveries: Vec<Delivery>,
    pub sets: Vec<QueuedSet>,
}

impl Effects {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.deliveries.is_empty() && self.sets.is_empty()
    }

    pub fn extend(&mut self, other: Effects) {
        self.events.extend(other.events);
        self.deliveries.extend(other.deliveries);
        self.sets.extend(other.sets);
    }
}

/// What a revocation sets off, computed inside the store's transaction from
/// what the store found there (so the effects match the state exactly).
/// `streams` are the revocation feed's streams (SPEC 13), which the store
/// reads only when something dies. Implemented by
/// the revocation use case's `Fallout` (`service/revocation.rs`); pure, no I/O.
pub trait Fallout: Send + Sync {
    /// Family `family` has just died; `family.revoked` says why
    /// (`refresh_token_reuse`, `authorization_code_replay`, an admin's
    /// reason, ...).
    fn family_revoked(&self, family: &Family, streams: &[Stream]) -> Effects;
    /// `families` (of one session and client) were revoked because `by`,
    /// a newer family of the same client, pushed them out. (No feed event:
    /// the session lives on.)
    fn families_superseded(&self, families: &[Family], by: &Family) -> Effects;
    /// Session `session` has just been revoked; `live` are its families
    /// that were still alive.
    fn session_revoked(&self, session: &UserSession, live: &[Family], streams: &[Stream]) -> Effects;
    /// Every session of `username` up to marker `seq` has just been revoked.
    fn user_revoked(&self, username: &str, seq: u64, revoked: &Revoked, streams: &[Stream]) -> Effects;
    /// Every session of `username` up to marker `seq` but one (which now
    /// lives on after the marker) has just been revoked, as a password
    /// change does; `ended` are the sessions that were alive until now. The
    /// feed names them one by one, never the whole user.
    fn user_revoked_keeping(
        &self,
        username: &str,
        seq: u64,
        revoked: &Revoked,
        ended: &[UserSession],
        streams: &[Stream],
    ) -> Effects;
}

/// A fallout that writes nothing (tests, and transitions that cannot kill).
pub struct NoFallout;

impl Fallout for NoFallout {
    fn family_revoked(&self, _: &Family, _: &[Stream]) -> Effects {
        Effects::default()
    }
    fn families_superseded(&self, _: &[Family], _: &Family) -> Effects {
        Effects::default()
    }
    fn session_revoked(&self, _: &UserSession, _: &[Family], _: &[Stream]) -> Effects {
        Effects::default()
    }
    fn user_revoked(&self, _: &str, _: u64, _: &Revoked, _: &[Stream]) -> Effects {
        Effects::default()
    }
    fn user_revoked_keeping(&self, _: &str, _: u64, _: &Revoked, _: &[UserSession], _: &[Stream]) -> Effects {
        Effects::default()
    }
}

/// Whose name a tombstone keeps (see [`Store::retired_name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetiredName {
    /// A deleted user's username (their tokens' `sub`).
    User,
    /// A deleted client's id.
    Client,
}

impl RetiredName {
    /// How the stores spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            RetiredName::User => "user",
            RetiredName::Client => "client",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(RetiredName::User),
            "client" => Some(RetiredName::Client),
            _ => None,
        }
    }
}

/// What a revocation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Revoke<T> {
    /// It was alive and is now revoked (its effects are written).
    Revoked(T),
    /// It was revoked before; nothing was written.
    AlreadyRevoked(T),
    NotFound,
}

impl<T> Revoke<T> {
    /// The record as stored afterwards, `None` when unknown.
    pub fn into_record(self) -> Option<T> {
        match self {
            Revoke::Revoked(t) | Revoke::AlreadyRevoked(t) => Some(t),
            Revoke::NotFound => None,
        }
    }

    pub fn changed(&self) -> bool {
        matches!(self, Revoke::Revoked(_))
    }
}

/// A first-run setup token as a store keeps it: its SHA-256 and expiry.
pub type SetupToken = ([u8; 32], UnixTime);

/// What the issuer keeps: one backend seam (sled embedded, PostgreSQL for
/// replicas). Every method is async; every transition is one method that
/// is atomic and durable on return, and says what happened.
pub trait Store: Send + Sync + 'static {
    /// Whether the store answers reads and writes (`/readyz`).
    fn check(&self) -> impl Future<Output = Result<()>> + Send;

    /// Make every write so far durable (used at shutdown).
    fn flush(&self) -> impl Future<Output = Result<()>> + Send;

    // --- Session policy (SPEC 3) ---

    /// The session settings set through the admin API (they win over file
    /// and environment), empty when none are set.
    fn admin_policy(&self) -> impl Future<Output = Result<PolicyLayer>> + Send;

    /// The global policies in force so far (see `PolicyHistory`).
    fn policy_history(&self) -> impl Future<Output = Result<Option<PolicyHistory>>> + Send;

    /// A settings transition: replace the admin layer (when `Some`) and the
    /// policy history, and append `event`, in one atomic, durable step.
    fn set_policy(
        &self,
        admin: Option<&PolicyLayer>,
        history: &PolicyHistory,
        event: Option<&AuditEvent>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The group policies set through the admin API (SPEC 14), by name;
    /// empty when none are set.
    fn admin_groups(&self) -> impl Future<Output = Result<std::collections::BTreeMap<String, GroupPolicy>>> + Send;

    /// Replace the admin-set group policies and append `event`, in one
    /// atomic, durable step (replicas reload them, as the policy).
    fn set_admin_groups(
        &self,
        groups: &std::collections::BTreeMap<String, GroupPolicy>,
        event: &AuditEvent,
    ) -> impl Future<Output = Result<()>> + Send;

    // --- Sessions, codes, families ---

    /// Create or replace a user session, kept until `keep_until`; durable.
    /// A new session's sequence is after every user marker written so far.
    fn put_session(&self, session: &UserSession, keep_until: UnixTime) -> impl Future<Output = Result<()>> + Send;

    /// Store the new `session` (kept until `keep_until`) under the user's
    /// session limit (SPEC 14), atomically against every other sign-in of
    /// the same user: `admit` is given the user's sessions on record (their
    /// marker applied) as read in this step, and decides. The sessions it
    /// ends are revoked with `revoked` and their fallout (logouts of their
    /// live families' clients, feed events, audit) in the same step as the
    /// new session is stored. At the limit, nothing is written. Durable on
    /// return. The sessions read are the user's own, through a per-user
    /// index, never all sessions.
    fn start_session<F>(
        &self,
        session: &UserSession,
        keep_until: UnixTime,
        admit: F,
        revoked: &Revoked,
        fallout: &dyn Fallout,
    ) -> impl Future<Output = Result<Admission>> + Send
    where
        F: Fn(&[UserSession]) -> Admit + Send + Sync;

    /// Session `sid`, with its user's revocation marker applied.
    fn session(&self, sid: &str) -> impl Future<Output = Result<Option<UserSession>>> + Send;

    /// Record activity on session `sid` at `at` (never moves it back, never
    /// touches a revoked session); durable when it changed. The session as
    /// stored afterwards.
    fn touch_session(&self, sid: &str, at: UnixTime) -> impl Future<Output = Result<Option<UserSession>>> + Send;

    /// Revoke session `sid` and with it every family in it; the fallout
    /// (logouts of its live families' clients, feed events, audit) is
    /// written in the same step.
    fn revoke_session(
        &self,
        sid: &str,
        revoked: &Revoked,
        fallout: &dyn Fallout,
    ) -> impl Future<Output = Result<Revoke<UserSession>>> + Send;

    /// The families created in session `sid`.
    fn session_families(&self, sid: &str) -> impl Future<Output = Result<Vec<Family>>> + Send;

    /// Store a fresh authorization code under `key`; durable.
    fn put_code(&self, key: &[u8], code: &AuthCode) -> impl Future<Output = Result<()>> + Send;

    fn code(&self, key: &[u8]) -> impl Future<Output = Result<Option<AuthCode>>> + Send;

    /// Redeem the code under `key`, creating `family` (kept until
    /// `keep_until`), atomically: a second redemption revokes the family the
    /// first one created (RFC 6749 4.1.2; reason
    /// `authorization_code_replay`, its fallout written in the same step).
    /// In the same transaction the family joins its session's families of
    /// its client ([`UserSession::admit_family`] with
    /// [`MAX_FAMILIES_PER_CLIENT`](crate::session::user_session::MAX_FAMILIES_PER_CLIENT)):
    /// the ones it supersedes are revoked (reason `superseded`, with
    /// [`Fallout::families_superseded`]) and the session records the
    /// activity. Durable on return, also when the answer is a replay.
    fn redeem_code(
        &self,
        key: &[u8],
        family: &Family,
        keep_until: UnixTime,
        now: UnixTime,
        fallout: &dyn Fallout,
    ) -> impl Future<Output = Result<Redemption>> + Send;

    fn family(&self, id: &str) -> impl Future<Output = Result<Option<Family>>> + Send;

    /// Family `id` with its session (its user's marker applied), as one
    /// read saw them: what a rotation decides on and introspection judges.
    /// PostgreSQL reads both in one statement; the default reads the family,
    /// then its session.
    fn family_view(&self, id: &str) -> impl Future<Output = Result<Option<FamilyView>>> + Send {
        async move {
            let Some(family) = self.family(id).await? else { return Ok(None) };
            let session = self.session(&family.sid).await?;
            Ok(Some(FamilyView { family, session, cache_epoch: None, revocations: None, cached: false }))
        }
    }

    /// [`Store::family_view`], or a view kept from an earlier read that is
    /// as good for judging liveness and deciding a rotation: no revocation
    /// has happened since (PostgreSQL keeps views while its revocation
    /// epoch stands still). A kept view may lag behind rotations, so it is
    /// marked `cached`: a caller that finds it dead reads again with
    /// [`Store::family_view`] before saying so, and [`Store::refresh_seen`]
    /// trusts it only for a rotation its write guards. The default reads.
    fn live_family_view(&self, id: &str) -> impl Future<Output = Result<Option<FamilyView>>> + Send {
        self.family_view(id)
    }

    /// [`Store::refresh`] of the family of `seen`, which the caller read
    /// with [`Store::family_view`] (to check the token's MAC): a backend may
    /// decide on it first instead of reading again, and then write only if
    /// nothing it decided on has changed since (else it reads again and
    /// decides again), so the outcome is the same as [`Store::refresh`]'s.
    /// The default ignores `seen`.
    fn refresh_seen<F>(
        &self,
        seen: FamilyView,
        decide: F,
        fallout: &dyn Fallout,
    ) -> impl Future<Output = Result<Option<RefreshDecision>>> + Send
    where
        F: Fn(&Family, Option<&UserSession>) -> RefreshDecision + Send + Sync,
    {
        async move { self.refresh(&seen.family.id, decide, fallout).await }
    }

    /// Run `decide` on family `id` and its session and store its outcome
    /// atomically: a rotation (compare-and-swap on the generation), or a
    /// kill on reuse with its fallout in the same step. After a rotation
    /// that is not background, the session records the activity (a backend
    /// may do it in a second step, as sled does: a crash in between loses
    /// only that mark, which can end the session earlier, never later). Grace and refusal
    /// write nothing. Of N concurrent first uses, one rotates and the
    /// others re-decide against the new generation. Durable on return.
    /// `None` when there is no such family.
    fn refresh<F>(
        &self,
        id: &str,
        decide: F,
        fallout: &dyn Fallout,
    ) -> impl Future<Output = Result<Option<RefreshDecision>>> + Send
    where
        F: Fn(&Family, Option<&UserSession>) -> RefreshDecision + Send + Sync;

    /// Revoke family `id`, its fallout in the same step.
    fn revoke_family(
        &self,
        id: &str,
        revoked: &Revoked,
        fallout: &dyn Fallout,
    ) -> impl Future<Output = Result<Revoke<Family>>> + Send;

    /// Remove every record whose expiry is at or before `now`. Returns how
    /// many were removed.
    fn sweep_expired(&self, now: UnixTime) -> impl Future<Output = Result<usize>> + Send;

    // --- Device authorization requests (SPEC 15, RFC 8628) ---

    /// Store a new device request under `device_key` (the SHA-256 of its
    /// device code), found also by `user_key` (the SHA-256 of its user
    /// code), both kept until [`DeviceRequest::keep_until`]; durable.
    /// `false`, and nothing written, when a request with that user code is
    /// on record: the caller draws another user code.
    fn put_device_request(
        &self,
        device_key: &[u8; 32],
        user_key: &[u8; 32],
        request: &DeviceRequest,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// The request of device code `device_key`.
    fn device_request(&self, device_key: &[u8; 32]) -> impl Future<Output = Result<Option<DeviceRequest>>> + Send;

    /// The request of user code `user_key`.
    fn device_request_by_user_code(
        &self,
        user_key: &[u8; 32],
    ) -> impl Future<Output = Result<Option<DeviceRequest>>> + Send;

    /// A person's answer at `/device` to the request of user code
    /// `user_key`: `Some` approves (with the person's session), `None`
    /// denies. Only an open request (pending, unexpired at `now`: see
    /// [`DeviceRequest::answer`]) changes, atomically against every other
    /// answer and poll, and then `event` is appended in the same step;
    /// durable.
    fn answer_device_request(
        &self,
        user_key: &[u8; 32],
        approval: Option<&Approval>,
        now: UnixTime,
        event: &AuditEvent,
    ) -> impl Future<Output = Result<DeviceAnswer>> + Send;

    /// A poll at `/token` by `client_id` with device code `device_key`, in
    /// one atomic, durable step: [`decide_poll`](crate::session::device::decide_poll)
    /// on the record, the new last poll and interval stored (`slow_down`
    /// remembered); when approved, the record becomes redeemed and the
    /// family `family(approval)` returns (kept until the time it returns
    /// with it) is created as [`Store::redeem_code`] creates one: it joins
    /// its session's families of its client (those it supersedes revoked
    /// with [`Fallout::families_superseded`]) and the session records the
    /// activity. Of N concurrent polls after approval exactly one is
    /// [`DevicePoll::Issued`]; the others are [`DevicePoll::Used`].
    /// `family` must be pure (it may run more than once). A request of
    /// another client is [`DevicePoll::NotFound`] and nothing is written.
    fn poll_device<F>(
        &self,
        device_key: &[u8; 32],
        client_id: &str,
        now: UnixTime,
        family: F,
        fallout: &dyn Fallout,
    ) -> impl Future<Output = Result<DevicePoll>> + Send
    where
        F: Fn(&Approval) -> (Family, UnixTime) + Send + Sync;

    // --- Users ---

    /// A user kept in the store (admin-created), `None` when unknown.
    fn user(&self, username: &str) -> impl Future<Output = Result<Option<User>>> + Send;

    /// Every stored (admin-created) user, sorted by username.
    fn users(&self) -> impl Future<Output = Result<Vec<User>>> + Send;

    /// Create or replace (`Some`) or delete (`None`) stored user `username`
    /// and append `event`; with `revoke`, also revoke every session the user
    /// has (a marker) with its fallout. Deleting a stored user also retires
    /// the name ([`Store::retired_name`]). One atomic, durable step. Returns
    /// whether a stored user existed before.
    fn write_user(
        &self,
        username: &str,
        user: Option<&User>,
        revoke: Option<&Revoked>,
        fallout: &dyn Fallout,
        event: &AuditEvent,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Replace stored user `user` and append `event`, and revoke every
    /// session of the user except `keep` (a marker, with its fallout), in
    /// one atomic, durable step: `keep` is re-sequenced above the new
    /// marker, so it alone lives on (SPEC 14: a user changing their own
    /// password). Returns whether `keep` lives on: `false` when it was not a
    /// live session of the user, and then every session of theirs ended.
    fn write_user_keeping(
        &self,
        user: &User,
        revoke: &Revoked,
        keep: &str,
        fallout: &dyn Fallout,
        event: &AuditEvent,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Whether `name` once named a user or a client that was deleted (a
    /// tombstone [`Store::write_user`] and [`Store::write_client`] write
    /// with the deletion, kept forever): a subject is never given again.
    fn retired_name(&self, name: &str) -> impl Future<Output = Result<Option<RetiredName>>> + Send;

    /// Revoke every session `username` has now, in one write whatever their
    /// number (a marker checked whenever a session is read), with its
    /// fallout; durable. Returns the marker's sequence: sessions up to it
    /// are revoked.
    fn revoke_user(
        &self,
        username: &str,
        revoked: &Revoked,
        fallout: &dyn Fallout,
    ) -> impl Future<Output = Result<u64>> + Send;

    /// Every session of `username` still on record (revoked ones included).
    fn user_sessions(&self, username: &str) -> impl Future<Output = Result<Vec<UserSession>>> + Send;

    /// Every user session on record (revoked ones included), for the
    /// settings preview.
    fn all_sessions(&self) -> impl Future<Output = Result<Vec<UserSession>>> + Send;

    // --- Clients ---

    /// The clients created through the admin API, sorted by id.
    fn clients(&self) -> impl Future<Output = Result<Vec<StoredClient>>> + Send;

    /// Create or replace (`Some`) or delete (`None`) stored client `id` and
    /// append `event`, atomically; durable. Deleting a stored client also
    /// retires its id ([`Store::retired_name`]). Whether one existed before.
    fn write_client(
        &self,
        id: &str,
        client: Option<&StoredClient>,
        event: &AuditEvent,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Every family on record of client `client_id`.
    fn client_families(&self, client_id: &str) -> impl Future<Output = Result<Vec<Family>>> + Send;

    // --- The event log (audit view) ---

    /// Append an event that is its own transition (a sign-in, a key
    /// rotation, a refused exchange) and return its sequence; durable.
    fn append_event(&self, event: &AuditEvent) -> impl Future<Output = Result<u64>> + Send;

    /// Replace event `seq` (an aggregated record being counted up). Not
    /// flushed before returning: a crash may lose the latest counts, which
    /// keeps a flood of refused attempts from costing a flush each.
    /// `false` when there is no such event (pruned).
    fn replace_event(&self, seq: u64, event: &AuditEvent) -> impl Future<Output = Result<bool>> + Send;

    /// Events newest first, strictly older than sequence `before`.
    fn events_page(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(u64, AuditEvent)>>> + Send;

    /// Drop events that happened before `before`, and user markers written
    /// before `markers_before` (every session they cover has expired by
    /// then). Returns how many were removed.
    fn prune_history(&self, before: UnixTime, markers_before: UnixTime) -> impl Future<Output = Result<usize>> + Send;

    // --- The back-channel outbox ---

    /// Queue back-channel logout deliveries; durable.
    fn enqueue_deliveries(&self, deliveries: &[Delivery]) -> impl Future<Output = Result<()>> + Send;

    /// Deliveries whose next attempt is due at `now`, oldest first.
    fn due_deliveries(&self, now: UnixTime, limit: usize) -> impl Future<Output = Result<Vec<(u64, Delivery)>>> + Send;

    /// Replace delivery `id` (new attempt count and time), or drop it when
    /// `next` is `None` (delivered, or given up); durable.
    fn finish_attempt(
        &self,
        id: u64,
        old: &Delivery,
        next: Option<&Delivery>,
    ) -> impl Future<Output = Result<()>> + Send;

    // --- The revocation feed (SPEC 13) ---

    /// Every SSF event stream, one per receiving client.
    fn ssf_streams(&self) -> impl Future<Output = Result<Vec<Stream>>> + Send;

    /// The event stream of receiving client `client_id`.
    fn ssf_stream(&self, client_id: &str) -> impl Future<Output = Result<Option<Stream>>> + Send;

    /// Create or replace the stream of `stream.client_id`; durable.
    fn put_ssf_stream(&self, stream: &Stream) -> impl Future<Output = Result<()>> + Send;

    /// Delete the stream of `client_id` and every event queued for it, in
    /// one step; durable. Whether there was one.
    fn delete_ssf_stream(&self, client_id: &str) -> impl Future<Output = Result<bool>> + Send;

    /// Queue Security Events, each for the stream of its `client_id`;
    /// durable.
    fn enqueue_sets(&self, sets: &[QueuedSet]) -> impl Future<Output = Result<()>> + Send;

    /// Up to `limit` events queued for the stream of `client_id`, oldest
    /// first, each with its queue id.
    fn queued_sets(&self, client_id: &str, limit: usize) -> impl Future<Output = Result<Vec<(u64, QueuedSet)>>> + Send;

    /// Remove the events with these `jti`s from the queue of `client_id`
    /// (acknowledged, or delivered); durable. How many were removed.
    fn remove_sets(&self, client_id: &str, jtis: &[String]) -> impl Future<Output = Result<usize>> + Send;

    /// Keep the signed form of queued events of `client_id` (`(id, SET)`),
    /// those still queued, the rest of each record as it is. Not flushed:
    /// a lost write only means signing again.
    fn keep_signed_sets(&self, client_id: &str, signed: &[(u64, SignedSet)])
    -> impl Future<Output = Result<()>> + Send;

    /// Replace queued event `id` (a failed push, rescheduled); durable.
    fn reschedule_set(&self, id: u64, next: &QueuedSet) -> impl Future<Output = Result<()>> + Send;

    /// Drop every event queued for `client_id` (its stream was disabled);
    /// durable.
    fn clear_sets(&self, client_id: &str) -> impl Future<Output = Result<usize>> + Send;

    /// Drop queued events issued before `before`; durable. How many.
    fn prune_sets(&self, before: UnixTime) -> impl Future<Output = Result<usize>> + Send;

    // --- Coordination of replicas (issue #9) ---
    //
    // One process alone (sled) needs none of it: the defaults are what a
    // single process does. A shared database (PostgreSQL) overrides them.

    /// Take or renew lease `name` (a periodic job only one replica may run
    /// at a time) for `owner` until `until`: granted when nobody holds it,
    /// when `owner` does, or when the holder's lease ran out at `now`.
    /// Whether `owner` holds it now.
    fn take_lease(
        &self,
        name: &str,
        owner: &str,
        now: UnixTime,
        until: UnixTime,
    ) -> impl Future<Output = Result<bool>> + Send {
        let _ = (name, owner, now, until);
        async { Ok(true) }
    }

    /// Claim up to `limit` back-channel deliveries due at `now` for `owner`
    /// until `lease_until`, oldest first: each is handed to one replica at
    /// a time, and one whose claimer died (its lease ran out) is handed out
    /// again. [`Store::finish_attempt`] ends the claim. One process: the
    /// due ones ([`Store::due_deliveries`]).
    fn claim_deliveries(
        &self,
        owner: &str,
        now: UnixTime,
        lease_until: UnixTime,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(u64, Delivery)>>> + Send {
        let _ = (owner, lease_until);
        self.due_deliveries(now, limit)
    }

    /// The authentication throttle `key` as counted by every replica,
    /// `None` when the store keeps no throttles (one process counts in
    /// memory) or the key has no failures on record.
    fn shared_throttle(&self, key: &ThrottleKey) -> impl Future<Output = Result<Option<ThrottleState>>> + Send {
        let _ = key;
        async { Ok(None) }
    }

    /// Count a failed attempt of `key` at `now` under `rules`, for every
    /// replica; durable. The state afterwards (`None`: not kept here).
    fn throttle_failed(
        &self,
        key: &ThrottleKey,
        rules: &ThrottleRules,
        now: UnixTime,
    ) -> impl Future<Output = Result<Option<ThrottleState>>> + Send {
        let _ = (key, rules, now);
        async { Ok(None) }
    }

    /// Forget the failures of `key` (a success).
    fn clear_throttle(&self, key: &ThrottleKey) -> impl Future<Output = Result<()>> + Send {
        let _ = key;
        async { Ok(()) }
    }

    /// Keep the SHA-256 of a first-run setup token (SPEC 9) until `until`,
    /// so that every replica accepts it. Whether this store keeps setup
    /// tokens (one process keeps its own in memory: `false`).
    fn put_setup_token(&self, hash: &[u8; 32], until: UnixTime) -> impl Future<Output = Result<bool>> + Send {
        let _ = (hash, until);
        async { Ok(false) }
    }

    /// Whether a replica stored the setup token `hash` and it is alive at
    /// `now`; `None` when this store keeps no setup tokens.
    fn setup_token(&self, hash: &[u8; 32], now: UnixTime) -> impl Future<Output = Result<Option<bool>>> + Send {
        let _ = (hash, now);
        async { Ok(None) }
    }

    /// Take every setup token alive at `now` out of the store, atomically
    /// (of two replicas taking at once, one gets them, the other none):
    /// their hashes and expiries, to put back if the administrator could
    /// not be created. `None` when this store keeps no setup tokens.
    fn take_setup_tokens(&self, now: UnixTime) -> impl Future<Output = Result<Option<Vec<SetupToken>>>> + Send {
        let _ = now;
        async { Ok(None) }
    }

    /// The epoch of what each replica caches (the policy, the run-time
    /// clients): it changes with every [`Store::set_policy`] and
    /// [`Store::write_client`], so a replica that loaded another epoch
    /// reloads. One process: always 0 (its caches are changed in place).
    fn cache_epoch(&self) -> impl Future<Output = Result<u64>> + Send {
        async { Ok(0) }
    }

    // --- Nothing per process (SPEC 12): what the pages and DPoP remember
    // between requests, in the store so that any replica answers. Each
    // record expires on its own (`sweep_expired` removes it) and each kind
    // is bounded against floods.

    /// Keep console session `key` (the SHA-256 of its cookie), replacing
    /// any record of that key, with version 0. When `max` records are kept
    /// it first makes room: expired ones go, then the oldest pending ones
    /// (so a flood of signed-out visitors cannot push out signed-in users),
    /// then the oldest. Durable on return, except a pending record (a
    /// sign-in in progress lost in a crash only asks to sign in again).
    fn put_console_session(
        &self,
        key: &[u8; 32],
        record: &ConsoleSessionRecord,
        max: usize,
        now: UnixTime,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Console session `key` and its version, if it is alive at `now`.
    fn console_session(
        &self,
        key: &[u8; 32],
        now: UnixTime,
    ) -> impl Future<Output = Result<Option<(u64, ConsoleSessionRecord)>>> + Send;

    /// Replace console session `key` if it is still at `version` (its
    /// version becomes `version + 1`): of two replicas writing from the same
    /// version, one wins. Whether it was replaced. Durable on return.
    fn replace_console_session(
        &self,
        key: &[u8; 32],
        version: u64,
        record: &ConsoleSessionRecord,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Remove console session `key` (only at `version` when given) and
    /// return what was removed: of two replicas taking it at once, one gets
    /// it. Durable on return.
    fn remove_console_session(
        &self,
        key: &[u8; 32],
        version: Option<u64>,
    ) -> impl Future<Output = Result<Option<ConsoleSessionRecord>>> + Send;

    /// Keep pending sign-in `key` (the SHA-256 of its id) unless `max`
    /// sign-ins alive at `now` are pending already (expired ones make
    /// room). Whether it was kept. Durable on return.
    fn put_pending_sign_in(
        &self,
        key: &[u8; 32],
        record: &PendingSignInRecord,
        max: usize,
        now: UnixTime,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Take pending sign-in `key` if it is bound to `browser` (the
    /// SHA-256 of the browser's secret): removed whatever its expiry (used
    /// once; of two replicas taking it at once, one gets it), returned if
    /// alive at `now`. Another browser's take leaves it alone.
    fn take_pending_sign_in(
        &self,
        key: &[u8; 32],
        browser: &[u8; 32],
        now: UnixTime,
    ) -> impl Future<Output = Result<Option<PendingSignInRecord>>> + Send;

    /// Remember DPoP proof `key` (RFC 9449 11.1: a digest of the proof's
    /// key and `jti`) until `until`, in one atomic insert-if-absent: `true`
    /// when it is new (or its earlier record expired by `now`), `false`
    /// when it was seen (a replay). Of two replicas remembering the same
    /// proof at once, one gets `true`. Durable on return on a shared
    /// database; the embedded store writes it within its flush interval (a
    /// proof's `iat` window bounds a replay across a crash).
    fn remember_proof(
        &self,
        key: &[u8; 16],
        until: UnixTime,
        now: UnixTime,
    ) -> impl Future<Output = Result<bool>> + Send;
}

/// A console session as the store keeps it (SPEC 12), found by the SHA-256
/// of its cookie. Its body (the console's tokens, or its sign-in in
/// progress) is sealed by the console under a key derived from the cookie,
/// which the store never sees: a copy of the store opens nothing.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConsoleSessionRecord {
    /// Still signing in (waiting for its callback).
    pub pending: bool,
    pub created: UnixTime,
    pub expires_at: UnixTime,
    /// The sealed body, opaque to the store.
    pub sealed: Vec<u8>,
}

/// A sign-in waiting for its user to end one of their sessions (SPEC 14,
/// `ask`), as the store keeps it, found by the SHA-256 of its id. It holds
/// no password (the password was checked when it was created), and the
/// browser it is bound to only as a SHA-256.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PendingSignInRecord {
    pub username: String,
    pub remember_me: bool,
    pub user_agent: Option<String>,
    pub remote: String,
    /// What the sign-in page continues with afterwards (opaque here).
    pub resume: String,
    /// SHA-256 of the secret of the browser it is bound to.
    pub browser: [u8; 32],
    pub expires_at: UnixTime,
}

/// A family and its session as one read saw them ([`Store::family_view`]);
/// `session` is `None` when it is gone, and carries its user's revocation
/// marker applied (`revoked`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FamilyView {
    pub family: Family,
    pub session: Option<UserSession>,
    /// The store's cache epoch ([`Store::cache_epoch`]) read in the same
    /// statement, where it can move (PostgreSQL): a request that reads the
    /// view first learns with it whether its cached settings are current.
    pub cache_epoch: Option<u64>,
    /// PostgreSQL: the revocation epoch the view was read at (migration 8).
    pub revocations: Option<u64>,
    /// Whether the view was kept from an earlier read
    /// ([`Store::live_family_view`]) rather than read for this call. A kept
    /// view's session carries what liveness and rotation decide on (its
    /// revocation, sequence, activity and times), not its families, device,
    /// address or cookie hash.
    pub cached: bool,
}

/// The outcome of [`Store::start_session`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// The session is stored; `ended` are the sessions that made room, as
    /// stored afterwards (revoked).
    Started { ended: Vec<UserSession> },
    /// Nothing was stored: the user is at the limit; `live` are their live
    /// sessions, least recently active first.
    AtLimit { live: Vec<UserSession> },
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
    /// revoked (`None` also when it was revoked already).
    Replayed {
        revoked_family: Option<String>,
    },
    NotFound,
}

/// The outcome of [`Store::answer_device_request`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceAnswer {
    /// The answer is stored; the request as stored afterwards.
    Answered(DeviceRequest),
    /// The request was no longer open (answered, redeemed or expired);
    /// nothing was written. The request as stored.
    Closed(DeviceRequest),
    NotFound,
}

/// The outcome of [`Store::poll_device`] (RFC 8628 3.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DevicePoll {
    /// `authorization_pending`.
    Pending,
    /// `slow_down`; the interval from now on.
    SlowDown { interval: crate::duration::Secs },
    /// `access_denied`.
    Denied,
    /// `expired_token`.
    Expired,
    /// `invalid_grant`: the tokens were handed out already.
    Used,
    /// The family is created (the tokens are to be handed out, once);
    /// `superseded` are the older families of its session and client it
    /// replaced, now revoked.
    Issued { family: Box<Family>, superseded: Vec<Family> },
    /// No such device code, or another client's.
    NotFound,
}

/// The backend chosen at start-up (`store` in the configuration). Every
/// call is dispatched to it; adding a backend is one variant here and one
/// arm in `dispatch!`.
#[derive(Clone)]
pub enum AnyStore {
    Sled(SledStore),
    Postgres(PgStore),
}

impl From<SledStore> for AnyStore {
    fn from(s: SledStore) -> Self {
        AnyStore::Sled(s)
    }
}

impl From<PgStore> for AnyStore {
    fn from(s: PgStore) -> Self {
        AnyStore::Postgres(s)
    }
}

impl AnyStore {
    /// The cache epoch ([`Store::cache_epoch`]) as read after this call
    /// began, one read shared by concurrent callers (`None` with the
    /// embedded store, where it never moves, or when the database did not
    /// answer in time). On PostgreSQL the same read says whether the
    /// family views it keeps still hold.
    pub async fn current_cache_epoch(&self) -> Option<u64> {
        match self {
            AnyStore::Sled(_) => None,
            AnyStore::Postgres(s) => s.current_cache_epoch().await,
        }
    }

    /// Make everything durable and release the backend (blocking).
    pub fn close(self) {
        match self {
            AnyStore::Sled(s) => s.close(),
            AnyStore::Postgres(s) => s.close(),
        }
    }

    /// The backend's name, for logs and `/readyz`.
    pub fn backend(&self) -> &'static str {
        match self {
            AnyStore::Sled(_) => "sled",
            AnyStore::Postgres(_) => "postgres",
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnyStore::Sled($s) => $call,
            AnyStore::Postgres($s) => $call,
        }
    };
}

impl Store for AnyStore {
    async fn check(&self) -> Result<()> {
        dispatch!(self, s => s.check().await)
    }
    async fn flush(&self) -> Result<()> {
        dispatch!(self, s => s.flush().await)
    }
    async fn admin_policy(&self) -> Result<PolicyLayer> {
        dispatch!(self, s => s.admin_policy().await)
    }
    async fn policy_history(&self) -> Result<Option<PolicyHistory>> {
        dispatch!(self, s => s.policy_history().await)
    }
    async fn set_policy(
        &self,
        admin: Option<&PolicyLayer>,
        history: &PolicyHistory,
        event: Option<&AuditEvent>,
    ) -> Result<()> {
        dispatch!(self, s => s.set_policy(admin, history, event).await)
    }
    async fn admin_groups(&self) -> Result<std::collections::BTreeMap<String, GroupPolicy>> {
        dispatch!(self, s => s.admin_groups().await)
    }
    async fn set_admin_groups(
        &self,
        groups: &std::collections::BTreeMap<String, GroupPolicy>,
        event: &AuditEvent,
    ) -> Result<()> {
        dispatch!(self, s => s.set_admin_groups(groups, event).await)
    }
    async fn put_session(&self, session: &UserSession, keep_until: UnixTime) -> Result<()> {
        dispatch!(self, s => s.put_session(session, keep_until).await)
    }
    async fn start_session<F>(
        &self,
        session: &UserSession,
        keep_until: UnixTime,
        admit: F,
        revoked: &Revoked,
        fallout: &dyn Fallout,
    ) -> Result<Admission>
    where
        F: Fn(&[UserSession]) -> Admit + Send + Sync,
    {
        dispatch!(self, s => s.start_session(session, keep_until, admit, revoked, fallout).await)
    }
    async fn session(&self, sid: &str) -> Result<Option<UserSession>> {
        dispatch!(self, s => s.session(sid).await)
    }
    async fn touch_session(&self, sid: &str, at: UnixTime) -> Result<Option<UserSession>> {
        dispatch!(self, s => s.touch_session(sid, at).await)
    }
    async fn revoke_session(&self, sid: &str, revoked: &Revoked, fallout: &dyn Fallout) -> Result<Revoke<UserSession>> {
        dispatch!(self, s => s.revoke_session(sid, revoked, fallout).await)
    }
    async fn session_families(&self, sid: &str) -> Result<Vec<Family>> {
        dispatch!(self, s => s.session_families(sid).await)
    }
    async fn put_code(&self, key: &[u8], code: &AuthCode) -> Result<()> {
        dispatch!(self, s => s.put_code(key, code).await)
    }
    async fn code(&self, key: &[u8]) -> Result<Option<AuthCode>> {
        dispatch!(self, s => s.code(key).await)
    }
    async fn redeem_code(
        &self,
        key: &[u8],
        family: &Family,
        keep_until: UnixTime,
        now: UnixTime,
        fallout: &dyn Fallout,
    ) -> Result<Redemption> {
        dispatch!(self, s => s.redeem_code(key, family, keep_until, now, fallout).await)
    }
    async fn family(&self, id: &str) -> Result<Option<Family>> {
        dispatch!(self, s => s.family(id).await)
    }
    async fn refresh<F>(&self, id: &str, decide: F, fallout: &dyn Fallout) -> Result<Option<RefreshDecision>>
    where
        F: Fn(&Family, Option<&UserSession>) -> RefreshDecision + Send + Sync,
    {
        dispatch!(self, s => s.refresh(id, decide, fallout).await)
    }
    async fn family_view(&self, id: &str) -> Result<Option<FamilyView>> {
        dispatch!(self, s => s.family_view(id).await)
    }
    async fn live_family_view(&self, id: &str) -> Result<Option<FamilyView>> {
        dispatch!(self, s => s.live_family_view(id).await)
    }
    async fn refresh_seen<F>(
        &self,
        seen: FamilyView,
        decide: F,
        fallout: &dyn Fallout,
    ) -> Result<Option<RefreshDecision>>
    where
        F: Fn(&Family, Option<&UserSession>) -> RefreshDecision + Send + Sync,
    {
        dispatch!(self, s => s.refresh_seen(seen, decide, fallout).await)
    }
    async fn revoke_family(&self, id: &str, revoked: &Revoked, fallout: &dyn Fallout) -> Result<Revoke<Family>> {
        dispatch!(self, s => s.revoke_family(id, revoked, fallout).await)
    }
    async fn sweep_expired(&self, now: UnixTime) -> Result<usize> {
        dispatch!(self, s => s.sweep_expired(now).await)
    }
    async fn put_device_request(
        &self,
        device_key: &[u8; 32],
        user_key: &[u8; 32],
        request: &DeviceRequest,
    ) -> Result<bool> {
        dispatch!(self, s => s.put_device_request(device_key, user_key, request).await)
    }
    async fn device_request(&self, device_key: &[u8; 32]) -> Result<Option<DeviceRequest>> {
        dispatch!(self, s => s.device_request(device_key).await)
    }
    async fn device_request_by_user_code(&self, user_key: &[u8; 32]) -> Result<Option<DeviceRequest>> {
        dispatch!(self, s => s.device_request_by_user_code(user_key).await)
    }
    async fn answer_device_request(
        &self,
        user_key: &[u8; 32],
        approval: Option<&Approval>,
        now: UnixTime,
        event: &AuditEvent,
    ) -> Result<DeviceAnswer> {
        dispatch!(self, s => s.answer_device_request(user_key, approval, now, event).await)
    }
    async fn poll_device<F>(
        &self,
        device_key: &[u8; 32],
        client_id: &str,
        now: UnixTime,
        family: F,
        fallout: &dyn Fallout,
    ) -> Result<DevicePoll>
    where
        F: Fn(&Approval) -> (Family, UnixTime) + Send + Sync,
    {
        dispatch!(self, s => s.poll_device(device_key, client_id, now, family, fallout).await)
    }
    async fn user(&self, username: &str) -> Result<Option<User>> {
        dispatch!(self, s => s.user(username).await)
    }
    async fn users(&self) -> Result<Vec<User>> {
        dispatch!(self, s => s.users().await)
    }
    async fn retired_name(&self, name: &str) -> Result<Option<RetiredName>> {
        dispatch!(self, s => s.retired_name(name).await)
    }
    async fn write_user(
        &self,
        username: &str,
        user: Option<&User>,
        revoke: Option<&Revoked>,
        fallout: &dyn Fallout,
        event: &AuditEvent,
    ) -> Result<bool> {
        dispatch!(self, s => s.write_user(username, user, revoke, fallout, event).await)
    }
    async fn write_user_keeping(
        &self,
        user: &User,
        revoke: &Revoked,
        keep: &str,
        fallout: &dyn Fallout,
        event: &AuditEvent,
    ) -> Result<bool> {
        dispatch!(self, s => s.write_user_keeping(user, revoke, keep, fallout, event).await)
    }
    async fn revoke_user(&self, username: &str, revoked: &Revoked, fallout: &dyn Fallout) -> Result<u64> {
        dispatch!(self, s => s.revoke_user(username, revoked, fallout).await)
    }
    async fn user_sessions(&self, username: &str) -> Result<Vec<UserSession>> {
        dispatch!(self, s => s.user_sessions(username).await)
    }
    async fn all_sessions(&self) -> Result<Vec<UserSession>> {
        dispatch!(self, s => s.all_sessions().await)
    }
    async fn clients(&self) -> Result<Vec<StoredClient>> {
        dispatch!(self, s => s.clients().await)
    }
    async fn write_client(&self, id: &str, client: Option<&StoredClient>, event: &AuditEvent) -> Result<bool> {
        dispatch!(self, s => s.write_client(id, client, event).await)
    }
    async fn client_families(&self, client_id: &str) -> Result<Vec<Family>> {
        dispatch!(self, s => s.client_families(client_id).await)
    }
    async fn append_event(&self, event: &AuditEvent) -> Result<u64> {
        dispatch!(self, s => s.append_event(event).await)
    }
    async fn replace_event(&self, seq: u64, event: &AuditEvent) -> Result<bool> {
        dispatch!(self, s => s.replace_event(seq, event).await)
    }
    async fn events_page(&self, before: Option<u64>, limit: usize) -> Result<Vec<(u64, AuditEvent)>> {
        dispatch!(self, s => s.events_page(before, limit).await)
    }
    async fn prune_history(&self, before: UnixTime, markers_before: UnixTime) -> Result<usize> {
        dispatch!(self, s => s.prune_history(before, markers_before).await)
    }
    async fn enqueue_deliveries(&self, deliveries: &[Delivery]) -> Result<()> {
        dispatch!(self, s => s.enqueue_deliveries(deliveries).await)
    }
    async fn due_deliveries(&self, now: UnixTime, limit: usize) -> Result<Vec<(u64, Delivery)>> {
        dispatch!(self, s => s.due_deliveries(now, limit).await)
    }
    async fn finish_attempt(&self, id: u64, old: &Delivery, next: Option<&Delivery>) -> Result<()> {
        dispatch!(self, s => s.finish_attempt(id, old, next).await)
    }
    async fn ssf_streams(&self) -> Result<Vec<Stream>> {
        dispatch!(self, s => s.ssf_streams().await)
    }
    async fn ssf_stream(&self, client_id: &str) -> Result<Option<Stream>> {
        dispatch!(self, s => s.ssf_stream(client_id).await)
    }
    async fn put_ssf_stream(&self, stream: &Stream) -> Result<()> {
        dispatch!(self, s => s.put_ssf_stream(stream).await)
    }
    async fn delete_ssf_stream(&self, client_id: &str) -> Result<bool> {
        dispatch!(self, s => s.delete_ssf_stream(client_id).await)
    }
    async fn enqueue_sets(&self, sets: &[QueuedSet]) -> Result<()> {
        dispatch!(self, s => s.enqueue_sets(sets).await)
    }
    async fn queued_sets(&self, client_id: &str, limit: usize) -> Result<Vec<(u64, QueuedSet)>> {
        dispatch!(self, s => s.queued_sets(client_id, limit).await)
    }
    async fn remove_sets(&self, client_id: &str, jtis: &[String]) -> Result<usize> {
        dispatch!(self, s => s.remove_sets(client_id, jtis).await)
    }
    async fn keep_signed_sets(&self, client_id: &str, signed: &[(u64, SignedSet)]) -> Result<()> {
        dispatch!(self, s => s.keep_signed_sets(client_id, signed).await)
    }
    async fn reschedule_set(&self, id: u64, next: &QueuedSet) -> Result<()> {
        dispatch!(self, s => s.reschedule_set(id, next).await)
    }
    async fn clear_sets(&self, client_id: &str) -> Result<usize> {
        dispatch!(self, s => s.clear_sets(client_id).await)
    }
    async fn prune_sets(&self, before: UnixTime) -> Result<usize> {
        dispatch!(self, s => s.prune_sets(before).await)
    }
    async fn take_lease(&self, name: &str, owner: &str, now: UnixTime, until: UnixTime) -> Result<bool> {
        dispatch!(self, s => s.take_lease(name, owner, now, until).await)
    }
    async fn claim_deliveries(
        &self,
        owner: &str,
        now: UnixTime,
        lease_until: UnixTime,
        limit: usize,
    ) -> Result<Vec<(u64, Delivery)>> {
        dispatch!(self, s => s.claim_deliveries(owner, now, lease_until, limit).await)
    }
    async fn shared_throttle(&self, key: &ThrottleKey) -> Result<Option<ThrottleState>> {
        dispatch!(self, s => s.shared_throttle(key).await)
    }
    async fn throttle_failed(
        &self,
        key: &ThrottleKey,
        rules: &ThrottleRules,
        now: UnixTime,
    ) -> Result<Option<ThrottleState>> {
        dispatch!(self, s => s.throttle_failed(key, rules, now).await)
    }
    async fn clear_throttle(&self, key: &ThrottleKey) -> Result<()> {
        dispatch!(self, s => s.clear_throttle(key).await)
    }
    async fn put_setup_token(&self, hash: &[u8; 32], until: UnixTime) -> Result<bool> {
        dispatch!(self, s => s.put_setup_token(hash, until).await)
    }
    async fn setup_token(&self, hash: &[u8; 32], now: UnixTime) -> Result<Option<bool>> {
        dispatch!(self, s => s.setup_token(hash, now).await)
    }
    async fn take_setup_tokens(&self, now: UnixTime) -> Result<Option<Vec<SetupToken>>> {
        dispatch!(self, s => s.take_setup_tokens(now).await)
    }
    async fn cache_epoch(&self) -> Result<u64> {
        dispatch!(self, s => s.cache_epoch().await)
    }
    async fn put_console_session(
        &self,
        key: &[u8; 32],
        record: &ConsoleSessionRecord,
        max: usize,
        now: UnixTime,
    ) -> Result<()> {
        dispatch!(self, s => s.put_console_session(key, record, max, now).await)
    }
    async fn console_session(&self, key: &[u8; 32], now: UnixTime) -> Result<Option<(u64, ConsoleSessionRecord)>> {
        dispatch!(self, s => s.console_session(key, now).await)
    }
    async fn replace_console_session(
        &self,
        key: &[u8; 32],
        version: u64,
        record: &ConsoleSessionRecord,
    ) -> Result<bool> {
        dispatch!(self, s => s.replace_console_session(key, version, record).await)
    }
    async fn remove_console_session(
        &self,
        key: &[u8; 32],
        version: Option<u64>,
    ) -> Result<Option<ConsoleSessionRecord>> {
        dispatch!(self, s => s.remove_console_session(key, version).await)
    }
    async fn put_pending_sign_in(
        &self,
        key: &[u8; 32],
        record: &PendingSignInRecord,
        max: usize,
        now: UnixTime,
    ) -> Result<bool> {
        dispatch!(self, s => s.put_pending_sign_in(key, record, max, now).await)
    }
    async fn take_pending_sign_in(
        &self,
        key: &[u8; 32],
        browser: &[u8; 32],
        now: UnixTime,
    ) -> Result<Option<PendingSignInRecord>> {
        dispatch!(self, s => s.take_pending_sign_in(key, browser, now).await)
    }
    async fn remember_proof(&self, key: &[u8; 16], until: UnixTime, now: UnixTime) -> Result<bool> {
        dispatch!(self, s => s.remember_proof(key, until, now).await)
    }
}
