//! The store contract suite (issue #8): what every [`Store`] backend must do,
//! written once, generic over the backend, and run against each.
//!
//! A backend plugs in with a [`Backend`] (a fresh empty store, and the same
//! data closed and opened again) and one line:
//!
//! ```ignore
//! crate::store_contract::contract_tests!(postgres, PgBackend::new().await);
//! // (the expression yields an Option: None skips, as without PostgreSQL)
//! ```
//!
//! which adds one `#[tokio::test]` per case, named
//! `<module>::<backend>::<case>`. Each case asserts behaviour through the
//! trait only (never a backend's layout), and most write their effects with
//! [`Recorder`], a fallout whose events, deliveries and feed events are
//! tagged with what they are about, so a case can count exactly what landed.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use tenure::audit::{AuditEvent, EventKind};
use tenure::clock::UnixTime;
use tenure::duration::Secs;
use tenure::logout::{Delivery, DeliveryKind};
use tenure::oauth::client_spec::{ClientSpec, StoredClient};
use tenure::policy::{IdleTimeout, OnSessionLimit, PolicyHistory, PolicyLayer, SessionLimit, SessionPolicy};
use tenure::session::Revoked;
use tenure::session::code::{AuthCode, CODE_RECORD_TTL};
use tenure::session::device::{Approval, DeviceRequest, DeviceState, RECORD_KEPT_AFTER_EXPIRY};
use tenure::session::end::{EndReason, Ended};
use tenure::session::family::{Activity, Family, RefreshDecision, decide_refresh};
use tenure::session::limit::{Admit, admit};
use tenure::session::user_session::{MAX_FAMILIES_PER_CLIENT, UserSession};
use tenure::ssf::{QueuedSet, SetEvent, SetSubject, Stream};
use tenure::store::{
    Admission, AnyStore, ConsoleSessionRecord, DeviceAnswer, DevicePoll, Effects, Fallout, FamilyView, NoFallout,
    PendingSignInRecord, Redemption, RetiredName, Revoke, SledStore, Store,
};
use tenure::user::User;

/// A store backend under test.
///
/// Each test case builds its own backend value (the expression given to
/// [`contract_tests!`]) and calls `fresh` once on it.
pub trait Backend: Send + Sync {
    type S: Store + Clone;

    /// A new, empty store.
    fn fresh(&self) -> impl Future<Output = Self::S> + Send;

    /// Close `store` (every clone of it is dropped by then) and open the
    /// same data again, as after a restart.
    fn reopen(&self, store: Self::S) -> impl Future<Output = Self::S> + Send;

    /// A second handle on the data of `store`, as another replica holds
    /// (the embedded store: `store` itself, which one process owns).
    fn replica(&self, store: &Self::S) -> impl Future<Output = Self::S> + Send;
}

/// The embedded sled store, in a temporary directory, through [`AnyStore`]
/// as the server uses it.
pub struct SledBackend {
    dir: tempfile::TempDir,
}

impl SledBackend {
    pub fn new() -> SledBackend {
        SledBackend { dir: tempfile::tempdir().expect("tempdir") }
    }

    fn open(&self) -> AnyStore {
        AnyStore::from(SledStore::open(&self.dir.path().join("store")).expect("open the sled store"))
    }
}

impl Backend for SledBackend {
    type S = AnyStore;

    async fn fresh(&self) -> AnyStore {
        self.open()
    }

    async fn reopen(&self, store: AnyStore) -> AnyStore {
        tokio::task::spawn_blocking(move || store.close()).await.expect("close");
        self.open()
    }

    async fn replica(&self, store: &AnyStore) -> AnyStore {
        store.clone()
    }
}

/// One `#[tokio::test]` per contract case for backend `$backend` (an
/// expression, evaluated afresh in each test; it may `.await`), in a module
/// named `$name`.
macro_rules! contract_tests {
    ($name:ident, $backend:expr) => {
        $crate::store_contract::contract_tests!(@cases $name, $backend, [
            check_and_flush_answer,
            a_code_redeems_once_and_its_replay_revokes_the_family,
            a_session_keeps_the_newest_families_of_a_client_and_records_activity,
            sessions_round_trip_and_the_store_assigns_the_sequence,
            touch_session_never_moves_back_and_never_revives,
            revoking_a_user_is_one_marker_that_spares_later_sign_ins,
            each_session_keeps_the_reason_of_the_user_revocation_that_ended_it,
            a_revoked_family_refuses_refresh,
            revoke_family_says_what_it_did_and_writes_its_effects_once,
            revoke_session_says_what_it_did_and_writes_its_effects_once,
            a_reuse_kill_writes_its_effects_and_grace_and_refusal_write_nothing,
            a_rotation_decided_on_a_stale_view_decides_again,
            a_kept_view_never_hides_an_end_and_a_lagging_one_decides_again,
            effects_are_visible_exactly_when_the_state_is,
            of_32_concurrent_first_uses_one_rotates_and_one_kills_without_grace,
            of_32_concurrent_first_uses_all_get_the_same_successor_with_grace,
            concurrent_revocations_write_one_set_of_effects,
            the_event_log_pages_newest_first_and_replaces_in_place,
            stored_users_round_trip_and_a_user_write_can_revoke,
            a_password_change_keeps_one_session_and_ends_the_others,
            stored_clients_round_trip_with_their_events,
            a_deletion_retires_the_name_for_good,
            old_events_and_markers_are_pruned,
            the_outbox_hands_out_due_deliveries_and_reschedules,
            the_set_queue_keeps_order_per_stream,
            admin_policy_and_history_round_trip,
            admin_groups_round_trip_with_their_event,
            everything_survives_a_reopen,
            sweeping_removes_exactly_what_expired,
            a_sign_in_under_the_limit_ends_the_least_recently_active_with_its_effects,
            of_32_concurrent_sign_ins_at_the_limit_exactly_the_limit_stay_live,
            of_32_concurrent_sign_ins_that_ask_at_the_limit_one_gets_the_last_place,
            device_requests_are_answered_once_and_redeemed_once,
            a_device_request_denied_or_expired_ends_the_polling_and_is_swept,
            of_32_concurrent_polls_after_approval_one_gets_the_tokens,
            a_console_session_is_replaced_by_version_and_taken_once,
            console_sessions_are_bounded_and_unfinished_sign_ins_go_first,
            a_pending_sign_in_is_taken_once_by_its_own_browser_and_pending_ones_are_bounded,
            a_dpop_proof_is_remembered_once_even_by_32_racing_replicas,
            what_pages_and_dpop_remember_expires_and_survives_a_reopen,
        ]);
    };
    (@cases $name:ident, $backend:expr, [$($case:ident),* $(,)?]) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    // `None`: the backend is not available here (said once, loudly).
                    let Some(backend) = $backend else { return };
                    $crate::store_contract::$case(&backend).await;
                }
            )*
        }
    };
}
pub(crate) use contract_tests;

contract_tests!(sled, Some(SledBackend::new()));
contract_tests!(postgres, PgBackend::new().await);

/// A fresh database on the test PostgreSQL (tests/support/postgres.rs), with
/// tenure's schema, through [`AnyStore`] as the server uses it; `None` when
/// there is no PostgreSQL (the harness says so once, or fails under
/// `TENURE_REQUIRE_EXTERNAL=1`).
pub struct PgBackend {
    db: crate::support::postgres::PgDatabase,
}

impl PgBackend {
    pub async fn new() -> Option<PgBackend> {
        let (db, store) = crate::support::postgres::migrated_store().await?;
        store.close();
        Some(PgBackend { db })
    }
}

impl Backend for PgBackend {
    type S = AnyStore;

    async fn fresh(&self) -> AnyStore {
        AnyStore::from(self.db.connect_store().await)
    }

    async fn replica(&self, _store: &AnyStore) -> AnyStore {
        AnyStore::from(self.db.connect_store().await)
    }

    async fn reopen(&self, store: AnyStore) -> AnyStore {
        tokio::task::spawn_blocking(move || store.close()).await.expect("close");
        AnyStore::from(self.db.connect_store().await)
    }
}

// --- Fixtures ---

pub const T0: UnixTime = UnixTime(1_700_000_000);
/// Far enough ahead that every queued delivery is due.
const FAR: UnixTime = UnixTime(T0.0 + 100 * 365 * 86_400);
const ALL: usize = 100_000;
/// The receiving client [`Recorder`] queues feed events for.
pub const RECEIVER: &str = "contract-receiver";

fn keep() -> UnixTime {
    T0.plus(Secs::days(30))
}

/// A fallout that writes one tagged event, one tagged delivery and one
/// tagged feed event per thing it is told about: `family:<id>`,
/// `superseded:<id>`, `session:<sid>`, `user:<name>:<seq>`. The event's
/// details say what the store passed in.
pub struct Recorder;

fn tagged(tag: String, kind: EventKind, user: &str, reason: &str, details: serde_json::Value) -> Effects {
    let event = AuditEvent::new(T0, kind, "contract", tag.clone()).reason(reason).details(details);
    let delivery = Delivery {
        kind: DeliveryKind::Logout {
            client_id: "contract".into(),
            uri: "http://127.0.0.1:9/bc".into(),
            sid: tag.clone(),
        },
        sub: user.to_owned(),
        created_at: T0,
        attempts: 0,
        next_attempt_at: T0,
    };
    let set = QueuedSet::new(
        RECEIVER,
        SetSubject::Session { user: user.to_owned(), sid: tag, client_id: None },
        SetEvent::SessionRevoked { reason: reason.to_owned(), initiating_entity: None, event_timestamp: T0 },
        T0,
    );
    Effects { events: vec![event], deliveries: vec![delivery], sets: vec![set] }
}

fn reason_of(r: Option<&Revoked>) -> String {
    r.map_or_else(|| "none".to_owned(), |r| r.reason.clone())
}

impl Fallout for Recorder {
    fn family_revoked(&self, family: &Family, _streams: &[Stream]) -> Effects {
        let reason = reason_of(family.revoked.as_ref());
        tagged(
            format!("family:{}", family.id),
            EventKind::FamilyRevoked,
            &family.username,
            &reason,
            serde_json::Value::Null,
        )
    }
    fn families_superseded(&self, families: &[Family], by: &Family) -> Effects {
        let mut out = Effects::default();
        for f in families {
            let details = serde_json::json!({ "by": by.id });
            out.extend(tagged(
                format!("superseded:{}", f.id),
                EventKind::FamilyRevoked,
                &f.username,
                "superseded",
                details,
            ));
        }
        out
    }
    fn session_revoked(&self, session: &UserSession, live: &[Family], _streams: &[Stream]) -> Effects {
        let mut ids: Vec<&str> = live.iter().map(|f| f.id.as_str()).collect();
        ids.sort_unstable();
        let reason = reason_of(session.revoked.as_ref());
        let details = serde_json::json!({ "live": ids });
        tagged(format!("session:{}", session.sid), EventKind::SessionRevoked, &session.username, &reason, details)
    }
    fn user_revoked(&self, username: &str, seq: u64, revoked: &Revoked, _streams: &[Stream]) -> Effects {
        tagged(
            format!("user:{username}:{seq}"),
            EventKind::UserSessionsRevoked,
            username,
            &revoked.reason,
            serde_json::Value::Null,
        )
    }
    fn user_revoked_keeping(
        &self,
        username: &str,
        seq: u64,
        revoked: &Revoked,
        ended: &[UserSession],
        streams: &[Stream],
    ) -> Effects {
        // The marker's event and fan-out; one feed event per ended session.
        let mut effects = self.user_revoked(username, seq, revoked, streams);
        effects.sets = ended
            .iter()
            .map(|s| {
                QueuedSet::new(
                    RECEIVER,
                    SetSubject::Session { user: username.to_owned(), sid: s.sid.clone(), client_id: None },
                    SetEvent::SessionRevoked {
                        reason: revoked.reason.clone(),
                        initiating_entity: None,
                        event_timestamp: T0,
                    },
                    T0,
                )
            })
            .collect();
        effects
    }
}

/// How many events, outbox deliveries and feed events tagged `tag` are
/// stored, read in that order.
pub async fn effects_of<S: Store>(store: &S, tag: &str) -> (usize, usize, usize) {
    let events = events_tagged(store, tag).await.len();
    let deliveries = store
        .due_deliveries(FAR, ALL)
        .await
        .expect("outbox")
        .into_iter()
        .filter(|(_, d)| matches!(&d.kind, DeliveryKind::Logout { sid, .. } if sid == tag))
        .count();
    let sets = store
        .queued_sets(RECEIVER, ALL)
        .await
        .expect("queue")
        .into_iter()
        .filter(|(_, s)| matches!(&s.subject, SetSubject::Session { sid, .. } if sid == tag))
        .count();
    (events, deliveries, sets)
}

async fn events_tagged<S: Store>(store: &S, tag: &str) -> Vec<AuditEvent> {
    store
        .events_page(None, ALL)
        .await
        .expect("events")
        .into_iter()
        .map(|(_, e)| e)
        .filter(|e| e.target == tag)
        .collect()
}

fn revoked(reason: &str) -> Revoked {
    Revoked { at: T0, reason: reason.to_owned(), by: None }
}

/// A session of `user` signed in at `at`, stored (with its sequence).
async fn signed_in<S: Store>(store: &S, user: &str, at: UnixTime, keep_until: UnixTime) -> UserSession {
    let (s, _) = UserSession::start(user, false, None, None, at).expect("rng");
    store.put_session(&s, keep_until).await.expect("put session");
    store.session(&s.sid).await.expect("read").expect("stored")
}

fn family_in(session: &UserSession, id: &str, client_id: &str) -> Family {
    Family {
        id: id.into(),
        salt: "salt".into(),
        sid: session.sid.clone(),
        username: session.username.clone(),
        client_id: client_id.into(),
        scope: "openid".into(),
        auth_time: session.signed_in,
        remember_me: false,
        created_at: T0,
        generation: 1,
        rotated_at: T0,
        active_at: None,
        issues_refresh_tokens: true,
        revoked: None,
        jkt: None,
    }
}

fn code_for(session: &UserSession, client_id: &str, issued_at: UnixTime) -> AuthCode {
    AuthCode {
        client_id: client_id.into(),
        redirect_uri: "http://127.0.0.1/cb".into(),
        redirect_uri_given: true,
        scope: "openid".into(),
        nonce: None,
        code_challenge: None,
        sid: session.sid.clone(),
        username: session.username.clone(),
        auth_time: session.signed_in,
        remember_me: false,
        issued_at,
        redeemed_family: None,
        dpop_jkt: None,
    }
}

/// Family `id` of `client_id` in `session`, created by redeeming a code
/// (stored under `code:<id>`) at T0.
async fn redeemed<S: Store>(store: &S, session: &UserSession, id: &str, client_id: &str) -> Family {
    let key = format!("code:{id}");
    store.put_code(key.as_bytes(), &code_for(session, client_id, T0)).await.expect("put code");
    let f = family_in(session, id, client_id);
    let outcome = store.redeem_code(key.as_bytes(), &f, keep(), T0, &Recorder).await.expect("redeem");
    assert!(matches!(outcome, Redemption::Redeemed { .. }), "{outcome:?}");
    f
}

/// Present generation `presented` of family `id` at `now`.
async fn refresh<S: Store>(store: &S, id: &str, presented: u64, now: UnixTime, grace: Secs) -> Option<RefreshDecision> {
    store
        .refresh(
            id,
            move |f, s| {
                // SPEC 14: why it ended, from the records read in this step.
                let ended = match s {
                    Some(s) => s.revoked.as_ref().map(Ended::revoked),
                    None => Some(Ended::revoked(&Revoked { at: now, reason: "no session".into(), by: None })),
                };
                decide_refresh(f, presented, now, grace, ended, Activity::Interactive)
            },
            &Recorder,
        )
        .await
        .expect("refresh")
}

/// The decision of a refresh presenting `presented` at `now`, as the
/// refresh grant makes it (a session gone or revoked ends the family).
fn decider(presented: u64, now: UnixTime, grace: Secs) -> impl Fn(&Family, Option<&UserSession>) -> RefreshDecision {
    move |f, s| {
        let ended = match s {
            Some(s) => s.revoked.as_ref().map(Ended::revoked),
            None => Some(Ended::revoked(&Revoked { at: now, reason: "no session".into(), by: None })),
        };
        decide_refresh(f, presented, now, grace, ended, Activity::Interactive)
    }
}

/// [`Store::refresh_seen`] on `seen`, presenting `presented` at `now`.
async fn refresh_seen<S: Store>(
    store: &S,
    seen: &FamilyView,
    presented: u64,
    now: UnixTime,
    grace: Secs,
) -> Option<RefreshDecision> {
    store.refresh_seen(seen.clone(), decider(presented, now, grace), &Recorder).await.expect("refresh")
}

fn settings_event(n: u64) -> AuditEvent {
    AuditEvent::new(T0.plus(Secs::new(n)), EventKind::SettingsChanged, "root", format!("settings:{n}"))
}

fn history(entries: u64) -> PolicyHistory {
    PolicyHistory::from_entries((0..entries).map(|i| (T0.plus(Secs::new(i)), SessionPolicy::default())).collect())
        .expect("not empty")
}

fn bob() -> User {
    User {
        username: "bob".into(),
        name: Some("Bob".into()),
        email: Some("bob@example.com".into()),
        password_hash: tenure::secret::PasswordHashString::hash(&tenure::secret::Secret::new("pw")).expect("hash"),
        permissions: Default::default(),
        disabled: false,
        created_at: Some(T0),
        groups: vec![],
    }
}

fn stored_client(id: &str) -> StoredClient {
    let spec: ClientSpec = serde_json::from_value(serde_json::json!({
        "id": id,
        "redirect_uris": ["http://127.0.0.1:9000/cb"],
        "grant_types": ["authorization_code", "refresh_token"],
    }))
    .expect("client spec");
    StoredClient { spec, secret_hash: None, created_at: T0 }
}

fn stream(client_id: &str) -> Stream {
    let body = serde_json::json!({ "delivery": { "method": tenure::ssf::POLL },
        "events_requested": [tenure::ssf::SESSION_REVOKED] });
    Stream::create(client_id, body.as_object().expect("object"), "http://iss", T0).expect("valid stream")
}

fn queued(client_id: &str, user: &str, at: u64) -> QueuedSet {
    let event =
        SetEvent::SessionRevoked { reason: "admin".into(), initiating_entity: None, event_timestamp: UnixTime(at) };
    QueuedSet::new(client_id, SetSubject::User { user: user.into() }, event, UnixTime(at))
}

fn logout(sid: &str, at: UnixTime) -> Delivery {
    Delivery {
        kind: DeliveryKind::Logout { client_id: "web".into(), uri: "http://127.0.0.1:1/bc".into(), sid: sid.into() },
        sub: "alice".into(),
        created_at: at,
        attempts: 0,
        next_attempt_at: at,
    }
}

// --- The cases ---

pub async fn check_and_flush_answer(b: &impl Backend) {
    let store = b.fresh().await;
    store.check().await.expect("check");
    store.flush().await.expect("flush");
    assert!(store.events_page(None, 10).await.expect("events").is_empty(), "a fresh store is empty");
    assert!(store.all_sessions().await.expect("sessions").is_empty());
    assert!(store.users().await.expect("users").is_empty());
    assert!(store.clients().await.expect("clients").is_empty());
    assert!(store.ssf_streams().await.expect("streams").is_empty());
    assert!(store.due_deliveries(FAR, 10).await.expect("outbox").is_empty());
}

pub async fn a_code_redeems_once_and_its_replay_revokes_the_family(b: &impl Backend) {
    let store = b.fresh().await;
    let session = signed_in(&store, "alice", T0, keep()).await;
    let code = code_for(&session, "web", T0);
    store.put_code(b"k", &code).await.expect("put");
    assert_eq!(store.code(b"k").await.expect("read"), Some(code.clone()));
    let f1 = family_in(&session, "f1", "web");
    assert_eq!(
        store.redeem_code(b"k", &f1, keep(), T0, &Recorder).await.expect("redeem"),
        Redemption::Redeemed { superseded: vec![] }
    );
    assert_eq!(store.family("f1").await.expect("read"), Some(f1.clone()));
    assert_eq!(store.code(b"k").await.expect("read").and_then(|c| c.redeemed_family), Some("f1".to_owned()));
    assert_eq!(store.session_families(&session.sid).await.expect("index"), vec![f1.clone()]);
    assert_eq!(effects_of(&store, "family:f1").await, (0, 0, 0), "a redemption kills nothing");

    // The replay revokes what the first redemption created, with its effects.
    let f2 = family_in(&session, "f2", "web");
    let replay = store.redeem_code(b"k", &f2, keep(), T0.plus(Secs::new(30)), &Recorder).await.expect("redeem");
    assert_eq!(replay, Redemption::Replayed { revoked_family: Some("f1".into()) });
    let killed = store.family("f1").await.expect("read").expect("exists");
    assert_eq!(
        killed.revoked,
        Some(Revoked { at: T0.plus(Secs::new(30)), reason: "authorization_code_replay".into(), by: None })
    );
    assert_eq!(effects_of(&store, "family:f1").await, (1, 1, 1));
    assert_eq!(events_tagged(&store, "family:f1").await[0].reason.as_deref(), Some("authorization_code_replay"));
    assert!(store.family("f2").await.expect("read").is_none(), "the replay created nothing");

    // A second replay finds it dead: nothing more is written.
    let again = store.redeem_code(b"k", &f2, keep(), T0.plus(Secs::new(31)), &Recorder).await.expect("redeem");
    assert_eq!(again, Redemption::Replayed { revoked_family: None });
    assert_eq!(effects_of(&store, "family:f1").await, (1, 1, 1), "written exactly once");

    assert_eq!(
        store.redeem_code(b"nope", &family_in(&session, "f3", "web"), keep(), T0, &Recorder).await.expect("redeem"),
        Redemption::NotFound
    );
    assert!(store.family("f3").await.expect("read").is_none());
    assert_eq!(store.code(b"nope").await.expect("read"), None);
}

pub async fn a_session_keeps_the_newest_families_of_a_client_and_records_activity(b: &impl Backend) {
    let store = b.fresh().await;
    let session = signed_in(&store, "alice", T0, keep()).await;
    let mut superseded = Vec::new();
    for i in 0..(MAX_FAMILIES_PER_CLIENT + 2) {
        let key = format!("k{i}");
        let at = T0.plus(Secs::new(i as u64));
        store.put_code(key.as_bytes(), &code_for(&session, "web", at)).await.expect("put");
        let mut f = family_in(&session, &format!("f{i}"), "web");
        (f.created_at, f.rotated_at) = (at, at);
        match store.redeem_code(key.as_bytes(), &f, keep(), at, &Recorder).await.expect("redeem") {
            Redemption::Redeemed { superseded: s } => superseded.extend(s),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(superseded.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(), ["f0", "f1"], "the oldest go first");
    for f in &superseded {
        assert_eq!(f.revoked.as_ref().map(|r| r.reason.as_str()), Some("superseded"), "returned as stored");
        let stored = store.family(&f.id).await.expect("read").expect("kept for the audit trail");
        assert_eq!(stored.revoked.map(|r| r.reason).as_deref(), Some("superseded"));
        let tag = format!("superseded:{}", f.id);
        assert_eq!(effects_of(&store, &tag).await, (1, 1, 1), "its fallout, once");
        let by = if f.id == "f0" { "f5" } else { "f6" };
        assert_eq!(events_tagged(&store, &tag).await[0].details["by"], by);
    }
    // Another client's families are bounded on their own.
    let other = redeemed(&store, &session, "g0", "spa").await;
    assert!(store.family(&other.id).await.expect("read").expect("exists").revoked.is_none());
    let mut live: Vec<String> =
        store.session_families(&session.sid).await.expect("index").into_iter().map(|f| f.id).collect();
    live.sort();
    assert_eq!(live, ["f2", "f3", "f4", "f5", "f6", "g0"], "superseded families leave the session");
    let stored = store.session(&session.sid).await.expect("read").expect("exists");
    assert_eq!(stored.last_active, T0.plus(Secs::new(6)), "each redemption is activity (not moved back by g0's)");

    // A rotation records activity on the session too; a late, older one
    // never moves it back; a background one does not count.
    let later = T0.plus(Secs::minutes(20));
    assert!(matches!(refresh(&store, "f6", 1, later, Secs::ZERO).await, Some(RefreshDecision::Rotate(_))));
    assert_eq!(store.session(&session.sid).await.expect("read").expect("exists").last_active, later);
    let earlier = T0.plus(Secs::minutes(10));
    assert!(matches!(refresh(&store, "f5", 1, earlier, Secs::ZERO).await, Some(RefreshDecision::Rotate(_))));
    assert_eq!(store.session(&session.sid).await.expect("read").expect("exists").last_active, later);
    let background = store
        .refresh(
            "f4",
            |f, _| decide_refresh(f, 1, T0.plus(Secs::minutes(25)), Secs::ZERO, None, Activity::Background),
            &Recorder,
        )
        .await
        .expect("refresh");
    assert!(matches!(background, Some(RefreshDecision::Rotate(_))));
    assert_eq!(store.family("f4").await.expect("read").expect("exists").generation, 2);
    assert_eq!(store.session(&session.sid).await.expect("read").expect("exists").last_active, later, "background");
}

pub async fn sessions_round_trip_and_the_store_assigns_the_sequence(b: &impl Backend) {
    let store = b.fresh().await;
    let (s, _) = UserSession::start("alice", true, Some("curl".into()), Some("10.0.0.1".into()), T0).expect("rng");
    store.put_session(&s, keep()).await.expect("put");
    let stored = store.session(&s.sid).await.expect("read").expect("exists");
    assert!(stored.seq > 0, "the store assigns the sequence");
    assert_eq!(stored, UserSession { seq: stored.seq, ..s.clone() });
    let (t, _) = UserSession::start("alice", false, None, None, T0).expect("rng");
    store.put_session(&t, keep()).await.expect("put");
    let t_seq = store.session(&t.sid).await.expect("read").expect("exists").seq;
    assert!(t_seq > stored.seq, "sequences grow");
    // Re-storing keeps the sequence the store gave it.
    store.put_session(&UserSession { ip: None, seq: 0, ..stored.clone() }, keep()).await.expect("replace");
    let replaced = store.session(&s.sid).await.expect("read").expect("exists");
    assert_eq!((replaced.seq, replaced.ip), (stored.seq, None));
    assert_eq!(store.session("nope").await.expect("read"), None);
    let mut listed: Vec<String> =
        store.user_sessions("alice").await.expect("list").into_iter().map(|s| s.sid).collect();
    listed.sort();
    let mut want = vec![s.sid.clone(), t.sid.clone()];
    want.sort();
    assert_eq!(listed, want);
    assert!(store.user_sessions("bob").await.expect("list").is_empty());
    assert_eq!(store.all_sessions().await.expect("all").len(), 2);
}

pub async fn touch_session_never_moves_back_and_never_revives(b: &impl Backend) {
    let store = b.fresh().await;
    let s = signed_in(&store, "alice", T0, keep()).await;
    let later = T0.plus(Secs::minutes(5));
    let touched = store.touch_session(&s.sid, later).await.expect("touch").expect("exists");
    assert_eq!(touched.last_active, later);
    assert_eq!(store.session(&s.sid).await.expect("read").map(|s| s.last_active), Some(later));
    let back = store.touch_session(&s.sid, T0.plus(Secs::minutes(1))).await.expect("touch").expect("exists");
    assert_eq!(back.last_active, later, "never moves back");
    assert_eq!(store.session(&s.sid).await.expect("read").map(|s| s.last_active), Some(later));
    assert_eq!(store.touch_session("nope", later).await.expect("touch"), None);

    // Revoked directly, or by its user's marker: a touch changes nothing.
    store.revoke_session(&s.sid, &revoked("logout"), &NoFallout).await.expect("revoke");
    let dead = store.touch_session(&s.sid, T0.plus(Secs::hours(1))).await.expect("touch").expect("exists");
    assert_eq!((dead.last_active, dead.revoked.map(|r| r.reason)), (later, Some("logout".to_owned())));
    let u = signed_in(&store, "bob", T0, keep()).await;
    store.revoke_user("bob", &revoked("compromised"), &NoFallout).await.expect("marker");
    let dead = store.touch_session(&u.sid, T0.plus(Secs::hours(1))).await.expect("touch").expect("exists");
    assert_eq!(dead.revoked.map(|r| r.reason).as_deref(), Some("compromised"));
    let read = store.session(&u.sid).await.expect("read").expect("exists");
    assert_eq!((read.last_active, read.revoked.is_some()), (T0, true), "never revived");
}

pub async fn revoking_a_user_is_one_marker_that_spares_later_sign_ins(b: &impl Backend) {
    let store = b.fresh().await;
    let mut sids = Vec::new();
    for _ in 0..3 {
        sids.push(signed_in(&store, "alice", T0, keep()).await.sid);
    }
    let bob = signed_in(&store, "bob", T0, keep()).await;
    assert_eq!(store.user_sessions("alice").await.expect("list").len(), 3);

    let seq = store.revoke_user("alice", &revoked("compromised"), &Recorder).await.expect("revoke");
    assert_eq!(effects_of(&store, &format!("user:alice:{seq}")).await, (1, 1, 1), "its fallout, with its sequence");
    for sid in &sids {
        let s = store.session(sid).await.expect("read").expect("exists");
        assert_eq!(s.revoked, Some(revoked("compromised")));
        assert!(s.seq <= seq, "the marker covers it");
    }
    assert!(store.session(&bob.sid).await.expect("read").expect("exists").revoked.is_none(), "other users untouched");
    assert!(store.user_sessions("alice").await.expect("list").iter().all(|s| s.revoked.is_some()), "listings too");
    assert_eq!(store.all_sessions().await.expect("all").iter().filter(|s| s.revoked.is_some()).count(), 3);

    // Signing in again in the same second is not affected by the marker.
    let again = signed_in(&store, "alice", T0, keep()).await;
    assert!(again.revoked.is_none() && again.seq > seq);
    let listed = store.user_sessions("alice").await.expect("list");
    assert_eq!(listed.iter().filter(|s| s.revoked.is_none()).count(), 1);
    // Re-storing an old copy (sequence 0, not revoked) does not lift it past the marker.
    let mut copy = store.session(&sids[1]).await.expect("read").expect("exists");
    copy.revoked = None;
    copy.seq = 0;
    store.put_session(&copy, keep()).await.expect("put");
    assert!(store.session(&sids[1]).await.expect("read").expect("exists").revoked.is_some());

    // A second revocation is a new marker with its own fallout.
    let seq2 = store.revoke_user("alice", &revoked("again"), &Recorder).await.expect("revoke");
    assert!(seq2 > seq);
    assert_eq!(effects_of(&store, &format!("user:alice:{seq2}")).await, (1, 1, 1));
    assert!(store.session(&again.sid).await.expect("read").expect("exists").revoked.is_some());
    // A session revoked by the marker is already revoked for revoke_session.
    match store.revoke_session(&again.sid, &revoked("logout"), &Recorder).await.expect("revoke") {
        Revoke::AlreadyRevoked(s) => assert_eq!(s.revoked.map(|r| r.reason).as_deref(), Some("again")),
        other => panic!("{other:?}"),
    }
    assert_eq!(effects_of(&store, &format!("session:{}", again.sid)).await, (0, 0, 0));
}

pub async fn a_revoked_family_refuses_refresh(b: &impl Backend) {
    let store = b.fresh().await;
    let session = signed_in(&store, "alice", T0, keep()).await;
    redeemed(&store, &session, "f", "web").await;
    let outcome = store.revoke_family("f", &revoked("revoked"), &NoFallout).await.expect("revoke");
    assert!(matches!(&outcome, Revoke::Revoked(f) if f.revoked == Some(revoked("revoked"))), "{outcome:?}");
    let decision = refresh(&store, "f", 1, T0, Secs::ZERO).await;
    // SPEC 14: refused, and why, from the record read in the same step.
    let why = |d: &Option<RefreshDecision>| match d {
        Some(RefreshDecision::Ended(e)) => Some(e.reason),
        _ => None,
    };
    assert_eq!(why(&decision), Some(EndReason::Revoked), "{decision:?}");
    assert_eq!(store.family("f").await.expect("read").expect("exists").generation, 1, "nothing changed");
    assert_eq!(refresh(&store, "nope", 1, T0, Secs::ZERO).await, None, "no such family");
    // A family whose session was revoked is refused too (the decision sees the session).
    let other = signed_in(&store, "alice", T0, keep()).await;
    redeemed(&store, &other, "g", "web").await;
    store.revoke_session(&other.sid, &revoked("logout"), &NoFallout).await.expect("revoke");
    assert_eq!(why(&refresh(&store, "g", 1, T0, Secs::ZERO).await), Some(EndReason::SignedOut));
}

pub async fn revoke_family_says_what_it_did_and_writes_its_effects_once(b: &impl Backend) {
    let store = b.fresh().await;
    let session = signed_in(&store, "alice", T0, keep()).await;
    let f = redeemed(&store, &session, "f", "web").await;
    match store.revoke_family("f", &revoked("admin_revoked"), &Recorder).await.expect("revoke") {
        Revoke::Revoked(got) => assert_eq!(got, Family { revoked: Some(revoked("admin_revoked")), ..f.clone() }),
        other => panic!("{other:?}"),
    }
    assert_eq!(effects_of(&store, "family:f").await, (1, 1, 1));
    assert_eq!(
        events_tagged(&store, "family:f").await[0].reason.as_deref(),
        Some("admin_revoked"),
        "the fallout saw the new state"
    );
    match store.revoke_family("f", &revoked("other"), &Recorder).await.expect("revoke") {
        Revoke::AlreadyRevoked(got) => {
            assert_eq!(got.revoked, Some(revoked("admin_revoked")), "the first revocation stands")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(effects_of(&store, "family:f").await, (1, 1, 1), "no second event or delivery");
    assert_eq!(store.revoke_family("nope", &revoked("x"), &Recorder).await.expect("revoke"), Revoke::NotFound);
    assert_eq!(effects_of(&store, "family:nope").await, (0, 0, 0));
    assert!(store.session(&session.sid).await.expect("read").expect("exists").revoked.is_none(), "the session lives");
}

pub async fn revoke_session_says_what_it_did_and_writes_its_effects_once(b: &impl Backend) {
    let store = b.fresh().await;
    let session = signed_in(&store, "alice", T0, keep()).await;
    redeemed(&store, &session, "dead", "web").await;
    redeemed(&store, &session, "live-spa", "spa").await;
    redeemed(&store, &session, "live-web", "web").await;
    store.revoke_family("dead", &revoked("admin_revoked"), &NoFallout).await.expect("revoke");

    let tag = format!("session:{}", session.sid);
    match store.revoke_session(&session.sid, &revoked("logout"), &Recorder).await.expect("revoke") {
        Revoke::Revoked(s) => assert_eq!(s.revoked, Some(revoked("logout"))),
        other => panic!("{other:?}"),
    }
    assert_eq!(effects_of(&store, &tag).await, (1, 1, 1));
    let event = events_tagged(&store, &tag).await.remove(0);
    assert_eq!(event.details["live"], serde_json::json!(["live-spa", "live-web"]), "the fallout got its live families");
    assert_eq!(event.reason.as_deref(), Some("logout"));
    assert_eq!(store.session(&session.sid).await.expect("read").expect("exists").revoked, Some(revoked("logout")));

    match store.revoke_session(&session.sid, &revoked("again"), &Recorder).await.expect("revoke") {
        Revoke::AlreadyRevoked(s) => assert_eq!(s.revoked, Some(revoked("logout"))),
        other => panic!("{other:?}"),
    }
    assert_eq!(effects_of(&store, &tag).await, (1, 1, 1), "no second event or delivery");
    assert_eq!(store.revoke_session("nope", &revoked("x"), &Recorder).await.expect("revoke"), Revoke::NotFound);
    assert_eq!(effects_of(&store, "session:nope").await, (0, 0, 0));
    // Its families can no longer be refreshed.
    let decision = refresh(&store, "live-web", 1, T0, Secs::ZERO).await;
    assert!(matches!(decision, Some(RefreshDecision::Ended(_))), "{decision:?}");
}

pub async fn a_reuse_kill_writes_its_effects_and_grace_and_refusal_write_nothing(b: &impl Backend) {
    let store = b.fresh().await;
    let session = signed_in(&store, "alice", T0, keep()).await;
    redeemed(&store, &session, "f", "web").await;
    let t1 = T0.plus(Secs::new(10));
    let Some(RefreshDecision::Rotate(next)) = refresh(&store, "f", 1, t1, Secs::new(30)).await else {
        panic!("rotates")
    };
    assert_eq!((next.generation, next.rotated_at), (2, t1));
    assert_eq!(store.family("f").await.expect("read"), Some(next.clone()), "the rotation is stored");
    // Within the grace window: the same successor, nothing written.
    assert_eq!(
        refresh(&store, "f", 1, t1.plus(Secs::new(5)), Secs::new(30)).await,
        Some(RefreshDecision::Grace(next.clone()))
    );
    assert_eq!(store.family("f").await.expect("read"), Some(next.clone()));
    // A generation never issued: refused, nothing written.
    assert!(matches!(refresh(&store, "f", 7, t1, Secs::new(30)).await, Some(RefreshDecision::Refused(_))));
    assert_eq!(store.family("f").await.expect("read"), Some(next.clone()));
    assert_eq!(effects_of(&store, "family:f").await, (0, 0, 0));

    // After the window: reuse kills the family, with its effects.
    let t2 = t1.plus(Secs::new(30));
    let Some(RefreshDecision::Reuse(killed)) = refresh(&store, "f", 1, t2, Secs::new(30)).await else {
        panic!("reuse")
    };
    let reuse = Revoked { at: t2, reason: "refresh_token_reuse".into(), by: None };
    assert_eq!(killed.revoked, Some(reuse.clone()));
    assert_eq!(store.family("f").await.expect("read").and_then(|f| f.revoked), Some(reuse));
    assert_eq!(effects_of(&store, "family:f").await, (1, 1, 1));
    assert_eq!(events_tagged(&store, "family:f").await[0].reason.as_deref(), Some("refresh_token_reuse"));
    // Every later use is refused and writes nothing more.
    for presented in [1, 2] {
        let decision = refresh(&store, "f", presented, t2, Secs::ZERO).await;
        let reused = matches!(&decision, Some(RefreshDecision::Ended(e)) if e.reason == EndReason::ReuseDetected);
        assert!(reused, "{decision:?}");
    }
    assert_eq!(effects_of(&store, "family:f").await, (1, 1, 1), "written exactly once");
}

/// A view read before a change (`Store::family_view`, as the refresh grant
/// reads it to check the MAC) never lets a rotation through that the change
/// forbids: the store decides again on what is stored now.
/// Issue 21: [`Store::live_family_view`] may answer from a view the store
/// kept (PostgreSQL, while its revocation epoch stands still), but never
/// one that hides an end, and a decision on a view that lags behind a
/// rotation is made again on a fresh read.
pub async fn a_kept_view_never_hides_an_end_and_a_lagging_one_decides_again(b: &impl Backend) {
    let store = b.fresh().await;
    let other = b.replica(&store).await;
    let t1 = T0.plus(Secs::new(10));
    for (user, end) in [("alice", "family"), ("bob", "session"), ("carol", "user")] {
        let session = signed_in(&store, user, T0, keep()).await;
        let id = format!("f-{user}");
        redeemed(&store, &session, &id, "web").await;
        let first = store.live_family_view(&id).await.expect("read").expect("exists");
        assert_eq!(first.family.generation, 1, "{end}");
        // Rotated at another replica: the kept view does not see it.
        let Some(RefreshDecision::Rotate(_)) = refresh(&other, &id, 1, t1, Secs::new(30)).await else {
            panic!("{end}: the first use rotates")
        };
        let lagging = store.live_family_view(&id).await.expect("read").expect("exists");
        assert_eq!(lagging.cached, lagging.family.generation == 1, "{end}: only a kept view lags: {lagging:?}");
        // The current token on the lagging view: it rotates, once.
        let decision = refresh_seen(&store, &lagging, 2, t1, Secs::new(30)).await;
        let Some(RefreshDecision::Rotate(third)) = &decision else { panic!("{end}: {decision:?}") };
        assert_eq!(third.generation, 3, "{end}");
        assert_eq!(store.family(&id).await.expect("read").map(|f| f.generation), Some(3), "{end}");
        let current = store.live_family_view(&id).await.expect("read").expect("exists");
        assert_eq!(current.family.generation, 3, "{end}: the replica's own rotation is what it keeps");
        // A rotation ends nothing: a store that keeps views still serves it.
        assert_eq!(current.cached, lagging.cached, "{end}: {current:?}");

        // Ended at the other replica.
        match end {
            "family" => drop(other.revoke_family(&id, &revoked("logout"), &Recorder).await.expect("revoke")),
            "session" => drop(other.revoke_session(&session.sid, &revoked("logout"), &Recorder).await.expect("revoke")),
            _ => drop(other.revoke_user(user, &revoked("compromised"), &Recorder).await.expect("revoke")),
        }
        let after = store.live_family_view(&id).await.expect("read").expect("exists");
        let ended = after.family.revoked.is_some() || after.session.as_ref().is_none_or(|s| s.revoked.is_some());
        assert!(ended, "{end}: the live view shows the end at once: {after:?}");
        // A rotation decided on the view from before the end writes nothing.
        let decision = refresh_seen(&store, &current, 3, t1, Secs::ZERO).await;
        assert!(matches!(&decision, Some(RefreshDecision::Ended(_))), "{end}: {decision:?}");
        assert_eq!(store.family(&id).await.expect("read").map(|f| f.generation), Some(3), "{end}: nothing rotated");
    }
}

pub async fn a_rotation_decided_on_a_stale_view_decides_again(b: &impl Backend) {
    let store = b.fresh().await;
    let session = signed_in(&store, "alice", T0, keep()).await;
    redeemed(&store, &session, "f", "web").await;
    let seen = store.family_view("f").await.expect("read").expect("exists");
    assert_eq!(seen.family, store.family("f").await.expect("read").expect("exists"));
    assert_eq!(seen.session.as_ref().map(|s| s.sid.as_str()), Some(session.sid.as_str()), "with its session");
    assert_eq!(store.family_view("nope").await.expect("read"), None);

    // Rotated since: the stale view's generation is spent, so outside the
    // grace window it is a reuse (one kill), within it the successor.
    let t1 = T0.plus(Secs::new(10));
    let Some(RefreshDecision::Rotate(next)) = refresh_seen(&store, &seen, 1, t1, Secs::new(30)).await else {
        panic!("the first use rotates")
    };
    assert_eq!(refresh_seen(&store, &seen, 1, t1, Secs::new(30)).await, Some(RefreshDecision::Grace(next.clone())));
    assert_eq!(store.family("f").await.expect("read"), Some(next.clone()), "nothing written by the grace");
    let t2 = t1.plus(Secs::new(60));
    assert!(matches!(refresh_seen(&store, &seen, 1, t2, Secs::new(30)).await, Some(RefreshDecision::Reuse(_))));
    let stored = store.family("f").await.expect("read").expect("exists");
    assert_eq!((stored.generation, stored.revoked.map(|r| r.reason)), (2, Some("refresh_token_reuse".into())));
    assert_eq!(effects_of(&store, "family:f").await, (1, 1, 1), "one kill, one set of effects");

    // Its session revoked since: ended, not rotated.
    let session = signed_in(&store, "bob", T0, keep()).await;
    redeemed(&store, &session, "g", "web").await;
    let seen = store.family_view("g").await.expect("read").expect("exists");
    store.revoke_session(&session.sid, &revoked("logout"), &Recorder).await.expect("revoke");
    let decision = refresh_seen(&store, &seen, 1, t1, Secs::ZERO).await;
    assert!(matches!(&decision, Some(RefreshDecision::Ended(_))), "{decision:?}");
    assert_eq!(store.family("g").await.expect("read").expect("exists").generation, 1);

    // Its user revoked since (a marker): ended, not rotated.
    let session = signed_in(&store, "carol", T0, keep()).await;
    redeemed(&store, &session, "h", "web").await;
    let seen = store.family_view("h").await.expect("read").expect("exists");
    store.revoke_user("carol", &revoked("compromised"), &Recorder).await.expect("revoke");
    let decision = refresh_seen(&store, &seen, 1, t1, Secs::ZERO).await;
    assert!(matches!(&decision, Some(RefreshDecision::Ended(_))), "{decision:?}");
    assert_eq!(store.family("h").await.expect("read").expect("exists").generation, 1);
    let seen = store.family_view("h").await.expect("read").expect("exists");
    assert!(seen.session.and_then(|s| s.revoked).is_some(), "the view applies the marker");

    // The family revoked since: ended, not rotated.
    let session = signed_in(&store, "dave", T0, keep()).await;
    redeemed(&store, &session, "k", "web").await;
    let seen = store.family_view("k").await.expect("read").expect("exists");
    store.revoke_family("k", &revoked("by client"), &Recorder).await.expect("revoke");
    let decision = refresh_seen(&store, &seen, 1, t1, Secs::ZERO).await;
    assert!(matches!(&decision, Some(RefreshDecision::Ended(_))), "{decision:?}");
    let stored = store.family("k").await.expect("read").expect("exists");
    assert_eq!((stored.generation, stored.revoked.map(|r| r.reason)), (1, Some("by client".into())));
    // Still live after all that: a rotation through a fresh view records activity.
    let session = signed_in(&store, "erin", T0, keep()).await;
    redeemed(&store, &session, "m", "web").await;
    let seen = store.family_view("m").await.expect("read").expect("exists");
    assert!(matches!(refresh_seen(&store, &seen, 1, t2, Secs::ZERO).await, Some(RefreshDecision::Rotate(_))));
    assert_eq!(store.session(&session.sid).await.expect("read").expect("exists").last_active, t2);
}

/// What one atomicity probe watches: a transition and how to read its state.
#[derive(Clone)]
enum Probe {
    Family(String),
    Reuse(String),
    Session(String),
    Settings(u64),
}

impl Probe {
    fn tag(&self) -> String {
        match self {
            Probe::Family(id) | Probe::Reuse(id) => format!("family:{id}"),
            Probe::Session(sid) => format!("session:{sid}"),
            Probe::Settings(n) => format!("settings:{n}"),
        }
    }

    async fn state<S: Store>(&self, store: &S) -> bool {
        match self {
            Probe::Family(id) | Probe::Reuse(id) => {
                store.family(id).await.expect("read").expect("exists").revoked.is_some()
            }
            Probe::Session(sid) => store.session(sid).await.expect("read").expect("exists").revoked.is_some(),
            Probe::Settings(n) => {
                store.policy_history().await.expect("read").is_some_and(|h| h.entries().len() as u64 > *n)
            }
        }
    }

    /// The effects a completed transition leaves.
    fn expected(&self) -> (usize, usize, usize) {
        match self {
            Probe::Settings(_) => (1, 0, 0),
            _ => (1, 1, 1),
        }
    }

    async fn run<S: Store>(&self, store: &S) {
        match self {
            Probe::Family(id) => {
                assert!(store.revoke_family(id, &revoked("admin_revoked"), &Recorder).await.expect("revoke").changed())
            }
            Probe::Reuse(id) => {
                let d = refresh(store, id, 1, T0.plus(Secs::new(60)), Secs::ZERO).await;
                assert!(matches!(d, Some(RefreshDecision::Reuse(_))), "{d:?}");
            }
            Probe::Session(sid) => {
                assert!(store.revoke_session(sid, &revoked("logout"), &Recorder).await.expect("revoke").changed())
            }
            Probe::Settings(n) => {
                store.set_policy(None, &history(n + 1), Some(&settings_event(*n))).await.expect("settings")
            }
        }
    }
}

pub async fn effects_are_visible_exactly_when_the_state_is(b: &impl Backend) {
    let store = b.fresh().await;
    store.set_policy(None, &history(1), None).await.expect("settings");
    let mut probes = Vec::new();
    for i in 0..8 {
        let s = signed_in(&store, "alice", T0, keep()).await;
        redeemed(&store, &s, &format!("a{i}"), "web").await;
        redeemed(&store, &s, &format!("r{i}"), "web").await;
        assert!(matches!(refresh(&store, &format!("r{i}"), 1, T0, Secs::ZERO).await, Some(RefreshDecision::Rotate(_))));
        let other = signed_in(&store, "alice", T0, keep()).await;
        redeemed(&store, &other, &format!("s{i}"), "web").await;
        probes.push(Probe::Family(format!("a{i}")));
        probes.push(Probe::Reuse(format!("r{i}")));
        probes.push(Probe::Session(other.sid));
        probes.push(Probe::Settings(i + 1));
    }
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (store, probes, done) = (store.clone(), probes.clone(), done.clone());
        tokio::spawn(async move {
            for p in &probes {
                p.run(&store).await;
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    };
    // Read the effects' event, then the state, then the rest: an event seen
    // means the state and every other effect must be seen after it; a state
    // seen means every effect must be seen after it.
    loop {
        let finished = done.load(std::sync::atomic::Ordering::SeqCst);
        for p in &probes {
            let tag = p.tag();
            let events = events_tagged(&store, &tag).await.len();
            let state = p.state(&store).await;
            let all = effects_of(&store, &tag).await;
            assert!(events <= 1 && all.0 <= 1 && all.1 <= 1 && all.2 <= 1, "{tag}: effects written twice: {all:?}");
            if events == 1 {
                assert!(state, "{tag}: its event is there before its state");
            }
            if state {
                assert_eq!(all, p.expected(), "{tag}: its state is there before its effects");
            } else {
                assert_eq!(events, 0, "{tag}: its event is there without its state");
            }
        }
        if finished {
            break;
        }
        tokio::task::yield_now().await;
    }
    writer.await.expect("writer");
    for p in &probes {
        assert!(p.state(&store).await, "{}", p.tag());
        assert_eq!(effects_of(&store, &p.tag()).await, p.expected(), "{}", p.tag());
    }
}

/// 32 first uses of generation 1 of one family, racing; their decisions.
async fn race_first_uses<B: Backend>(b: &B, grace: Secs) -> (B::S, Vec<RefreshDecision>) {
    let store = b.fresh().await;
    let session = signed_in(&store, "alice", T0, keep()).await;
    redeemed(&store, &session, "f", "web").await;
    let barrier = Arc::new(tokio::sync::Barrier::new(32));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (store, barrier) = (store.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            refresh(&store, "f", 1, T0.plus(Secs::new(5)), grace).await.expect("family exists")
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("join"));
    }
    (store, out)
}

pub async fn of_32_concurrent_first_uses_one_rotates_and_one_kills_without_grace(b: &impl Backend) {
    let (store, decisions) = race_first_uses(b, Secs::ZERO).await;
    let count = |f: fn(&RefreshDecision) -> bool| decisions.iter().filter(|d| f(d)).count();
    // One rotates; the others re-decide against generation 2: the first of
    // them is a reuse and kills the family, the rest find it revoked.
    assert_eq!(count(|d| matches!(d, RefreshDecision::Rotate(_))), 1, "{decisions:?}");
    assert_eq!(count(|d| matches!(d, RefreshDecision::Reuse(_))), 1, "{decisions:?}");
    // The rest find it ended, and why: the reuse (SPEC 14).
    let reused = |d: &RefreshDecision| matches!(d, RefreshDecision::Ended(e) if e.reason == EndReason::ReuseDetected);
    assert_eq!(count(reused), 30, "{decisions:?}");
    let f = store.family("f").await.expect("read").expect("exists");
    assert_eq!((f.generation, f.revoked.map(|r| r.reason)), (2, Some("refresh_token_reuse".to_owned())));
    assert_eq!(effects_of(&store, "family:f").await, (1, 1, 1), "one kill, one set of effects");
}

pub async fn of_32_concurrent_first_uses_all_get_the_same_successor_with_grace(b: &impl Backend) {
    let (store, decisions) = race_first_uses(b, Secs::new(30)).await;
    assert_eq!(decisions.iter().filter(|d| matches!(d, RefreshDecision::Rotate(_))).count(), 1);
    let stored = store.family("f").await.expect("read").expect("exists");
    for d in &decisions {
        match d {
            RefreshDecision::Rotate(f) | RefreshDecision::Grace(f) => assert_eq!(f, &stored),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((stored.generation, stored.revoked), (2, None));
    assert_eq!(effects_of(&store, "family:f").await, (0, 0, 0));
}

pub async fn concurrent_revocations_write_one_set_of_effects(b: &impl Backend) {
    let store = b.fresh().await;
    let session = signed_in(&store, "alice", T0, keep()).await;
    redeemed(&store, &session, "in-session", "web").await;
    let other = signed_in(&store, "alice", T0, keep()).await;
    redeemed(&store, &other, "f", "web").await;
    let barrier = Arc::new(tokio::sync::Barrier::new(32));
    let mut tasks = Vec::new();
    for i in 0..32 {
        let (store, barrier, sid) = (store.clone(), barrier.clone(), session.sid.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            if i % 2 == 0 {
                store.revoke_session(&sid, &revoked("logout"), &Recorder).await.expect("revoke").changed()
            } else {
                store.revoke_family("f", &revoked("admin_revoked"), &Recorder).await.expect("revoke").changed()
            }
        }));
    }
    let mut changed = [0, 0];
    for (i, t) in tasks.into_iter().enumerate() {
        if t.await.expect("join") {
            changed[i % 2] += 1;
        }
    }
    assert_eq!(changed, [1, 1], "one of each race revoked, the others found it revoked");
    assert_eq!(effects_of(&store, &format!("session:{}", session.sid)).await, (1, 1, 1));
    assert_eq!(effects_of(&store, "family:f").await, (1, 1, 1));
}

pub async fn the_event_log_pages_newest_first_and_replaces_in_place(b: &impl Backend) {
    let store = b.fresh().await;
    let mut seqs = Vec::new();
    for i in 0..5u64 {
        let e = AuditEvent::new(T0.plus(Secs::new(i)), EventKind::SignIn, "alice", "user:alice");
        seqs.push(store.append_event(&e).await.expect("append"));
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "sequences grow: {seqs:?}");
    let secs = |page: &[(u64, AuditEvent)]| page.iter().map(|(_, e)| e.at.as_secs() - T0.as_secs()).collect::<Vec<_>>();
    let first = store.events_page(None, 2).await.expect("page");
    assert_eq!(secs(&first), [4, 3]);
    assert_eq!(first.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [seqs[4], seqs[3]]);
    let second = store.events_page(Some(first[1].0), 2).await.expect("page");
    assert_eq!(secs(&second), [2, 1]);
    let last = store.events_page(Some(second[1].0), 10).await.expect("page");
    assert_eq!(secs(&last), [0]);
    assert!(store.events_page(Some(seqs[0]), 10).await.expect("page").is_empty());

    let counted =
        AuditEvent::new(T0, EventKind::SignInFailed, "alice", "user:alice").details(serde_json::json!({"attempts": 7}));
    assert!(store.replace_event(seqs[2], &counted).await.expect("replace"));
    let page = store.events_page(Some(seqs[3]), 1).await.expect("page");
    assert_eq!(page, vec![(seqs[2], counted.clone())], "replaced in place, same sequence");
    assert!(!store.replace_event(seqs[4] + 1000, &counted).await.expect("replace"), "no such event");
    assert_eq!(store.events_page(None, 100).await.expect("page").len(), 5);
}

pub async fn stored_users_round_trip_and_a_user_write_can_revoke(b: &impl Backend) {
    let store = b.fresh().await;
    assert!(store.user("bob").await.expect("read").is_none());
    let created = AuditEvent::new(T0, EventKind::UserCreated, "root", "user:bob");
    assert!(!store.write_user("bob", Some(&bob()), None, &Recorder, &created).await.expect("put"), "new");
    let back = store.user("bob").await.expect("read").expect("exists");
    assert_eq!(
        (back.name.as_deref(), back.email.as_deref(), back.created_at),
        (Some("Bob"), Some("bob@example.com"), Some(T0))
    );
    assert!(back.password_hash.verify("pw"));
    let carol = User { username: "carol".into(), ..bob() };
    let created_carol = AuditEvent::new(T0, EventKind::UserCreated, "root", "user:carol");
    store.write_user("carol", Some(&carol), None, &Recorder, &created_carol).await.expect("put");
    let users: Vec<String> = store.users().await.expect("list").into_iter().map(|u| u.username).collect();
    assert_eq!(users, ["bob", "carol"], "sorted by username");
    assert_eq!(events_tagged(&store, "user:bob").await, vec![created], "each write appends its event");

    // Disabling revokes every session in the same step, with its fallout.
    let session = signed_in(&store, "bob", T0, keep()).await;
    let disabled = User { disabled: true, ..bob() };
    let event = AuditEvent::new(T0, EventKind::UserDisabled, "root", "user:bob");
    assert!(
        store
            .write_user("bob", Some(&disabled), Some(&revoked("user_disabled")), &Recorder, &event)
            .await
            .expect("put")
    );
    assert!(store.user("bob").await.expect("read").expect("exists").disabled);
    assert_eq!(
        store.session(&session.sid).await.expect("read").expect("exists").revoked,
        Some(revoked("user_disabled"))
    );
    let events = store.events_page(None, ALL).await.expect("events");
    let fallout: Vec<&AuditEvent> =
        events.iter().map(|(_, e)| e).filter(|e| e.target.starts_with("user:bob:")).collect();
    assert_eq!(fallout.len(), 1, "the marker's fallout");
    assert_eq!(effects_of(&store, &fallout[0].target).await, (1, 1, 1));
    assert!(events.iter().any(|(_, e)| e.kind == EventKind::UserDisabled), "and the write's own event");
    // Without `revoke`, the fallout is not consulted.
    let deleted = AuditEvent::new(T0, EventKind::UserDeleted, "root", "user:carol");
    assert!(store.write_user("carol", None, None, &Recorder, &deleted).await.expect("delete"));
    assert!(!store.write_user("carol", None, None, &Recorder, &deleted).await.expect("delete"), "gone already");
    assert!(store.user("carol").await.expect("read").is_none());
    assert_eq!(events_tagged(&store, "user:carol").await.len(), 3);
    assert_eq!(store.due_deliveries(FAR, ALL).await.expect("outbox").len(), 1, "only bob's revocation queued one");
}

/// SPEC 14: two "every session of this user" revocations in a row (a
/// password reset, then a disable): each session lists the reason and time
/// of the one that ended it, not the later one's.
pub async fn each_session_keeps_the_reason_of_the_user_revocation_that_ended_it(b: &impl Backend) {
    let store = b.fresh().await;
    let first = signed_in(&store, "alice", T0, keep()).await;
    let reset = Revoked { at: T0.plus(Secs::new(10)), reason: "credentials_changed".into(), by: Some("root".into()) };
    store.revoke_user("alice", &reset, &Recorder).await.expect("first marker");
    let second = signed_in(&store, "alice", T0.plus(Secs::new(20)), keep()).await;
    let disable = Revoked { at: T0.plus(Secs::new(30)), reason: "user_disabled".into(), by: Some("helpdesk".into()) };
    store.revoke_user("alice", &disable, &Recorder).await.expect("second marker");
    let third = signed_in(&store, "alice", T0.plus(Secs::new(40)), keep()).await;

    assert_eq!(store.session(&first.sid).await.expect("read").expect("exists").revoked, Some(reset.clone()));
    assert_eq!(store.session(&second.sid).await.expect("read").expect("exists").revoked, Some(disable.clone()));
    assert!(store.session(&third.sid).await.expect("read").expect("exists").revoked.is_none());
    let mut listed: Vec<(String, Option<Revoked>)> =
        store.user_sessions("alice").await.expect("list").into_iter().map(|s| (s.sid, s.revoked)).collect();
    listed.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected =
        vec![(first.sid.clone(), Some(reset)), (second.sid.clone(), Some(disable)), (third.sid.clone(), None)];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(listed, expected, "the listing reads the same");
}

/// SPEC 14: a user changing their own password ends every other session of
/// theirs in the same step as the user write; the current one lives on, and
/// the marker's fallout (the back-channel fan-out) leaves it out.
pub async fn a_password_change_keeps_one_session_and_ends_the_others(b: &impl Backend) {
    let store = b.fresh().await;
    let created = AuditEvent::new(T0, EventKind::UserCreated, "root", "user:bob");
    store.write_user("bob", Some(&bob()), None, &Recorder, &created).await.expect("put");
    let current = signed_in(&store, "bob", T0, keep()).await;
    let other = signed_in(&store, "bob", T0, keep()).await;
    let carol = signed_in(&store, "carol", T0, keep()).await;
    redeemed(&store, &current, "kept", "web").await;
    redeemed(&store, &other, "ended", "web").await;

    let changed = User {
        password_hash: tenure::secret::PasswordHashString::hash(&tenure::secret::Secret::new("new")).expect("hash"),
        ..bob()
    };
    let event = AuditEvent::new(T0, EventKind::UserUpdated, "bob", "user:bob").reason("credentials_changed");
    let kept = store
        .write_user_keeping(&changed, &revoked("credentials_changed"), &current.sid, &Recorder, &event)
        .await
        .expect("write");
    assert!(kept, "the current session was live");
    assert!(store.user("bob").await.expect("read").expect("exists").password_hash.verify("new"), "the new hash");
    assert!(events_tagged(&store, "user:bob").await.contains(&event), "the write's own event");

    let now_current = store.session(&current.sid).await.expect("read").expect("exists");
    let now_other = store.session(&other.sid).await.expect("read").expect("exists");
    assert!(now_current.revoked.is_none(), "{now_current:?}");
    assert_eq!(now_other.revoked, Some(revoked("credentials_changed")));
    assert!(store.session(&carol.sid).await.expect("read").expect("exists").revoked.is_none(), "others untouched");
    let markers: Vec<AuditEvent> = store
        .events_page(None, ALL)
        .await
        .expect("events")
        .into_iter()
        .map(|(_, e)| e)
        .filter(|e| e.target.starts_with("user:bob:"))
        .collect();
    assert_eq!(markers.len(), 1, "one marker, with its fallout");
    assert_eq!(effects_of(&store, &markers[0].target).await, (1, 1, 0), "no feed event for the whole user");
    assert_eq!(effects_of(&store, &other.sid).await, (0, 0, 1), "the feed names the ended session");
    assert_eq!(effects_of(&store, &current.sid).await, (0, 0, 0), "and not the one that stays");
    assert_eq!(effects_of(&store, &carol.sid).await, (0, 0, 0), "nor another user's");
    let seq: u64 = markers[0].target.rsplit(':').next().and_then(|n| n.parse().ok()).expect("the marker's sequence");
    assert!(now_other.seq <= seq && now_current.seq > seq, "the kept session is after the marker");

    // Its families refresh; the other session's are refused.
    assert!(matches!(refresh(&store, "kept", 1, T0, Secs::ZERO).await, Some(RefreshDecision::Rotate(_))));
    let refused = refresh(&store, "ended", 1, T0, Secs::ZERO).await;
    assert!(
        matches!(&refused, Some(RefreshDecision::Ended(e)) if e.reason == EndReason::CredentialsChanged),
        "{refused:?}"
    );
    // Activity and a re-stored copy keep the new sequence.
    let touched = store.touch_session(&current.sid, T0.plus(Secs::new(5))).await.expect("touch").expect("exists");
    assert!(touched.revoked.is_none());
    store.put_session(&touched, keep()).await.expect("put");
    assert!(store.session(&current.sid).await.expect("read").expect("exists").revoked.is_none());
    let live: Vec<String> = store
        .user_sessions("bob")
        .await
        .expect("list")
        .into_iter()
        .filter(|s| s.revoked.is_none())
        .map(|s| s.sid)
        .collect();
    assert_eq!(live, std::slice::from_ref(&current.sid));

    // Keeping a session that is not a live one of the user keeps nothing:
    // another user's session, or one already ended, and every session ends.
    let event = AuditEvent::new(T0, EventKind::UserUpdated, "bob", "user:bob");
    for keep_sid in [carol.sid.as_str(), other.sid.as_str(), "no-such-session"] {
        let kept = store
            .write_user_keeping(&changed, &revoked("credentials_changed"), keep_sid, &Recorder, &event)
            .await
            .expect("write");
        assert!(!kept, "{keep_sid}");
    }
    assert!(store.session(&current.sid).await.expect("read").expect("exists").revoked.is_some());
    assert!(store.session(&carol.sid).await.expect("read").expect("exists").revoked.is_none(), "never another's");
    // The first of those writes ended the session kept before, and named
    // it; the ended one is not named again.
    assert_eq!(effects_of(&store, &current.sid).await, (0, 0, 1));
    assert_eq!(effects_of(&store, &other.sid).await, (0, 0, 1));
}

pub async fn stored_clients_round_trip_with_their_events(b: &impl Backend) {
    let store = b.fresh().await;
    let event = |kind, id: &str| AuditEvent::new(T0, kind, "root", format!("client:{id}"));
    assert!(
        !store
            .write_client("zeta", Some(&stored_client("zeta")), &event(EventKind::ClientCreated, "zeta"))
            .await
            .expect("put")
    );
    assert!(
        !store
            .write_client("alpha", Some(&stored_client("alpha")), &event(EventKind::ClientCreated, "alpha"))
            .await
            .expect("put")
    );
    let ids: Vec<String> = store.clients().await.expect("list").into_iter().map(|c| c.spec.id).collect();
    assert_eq!(ids, ["alpha", "zeta"], "sorted by id");
    let mut changed = stored_client("zeta");
    changed.spec.name = Some("Zeta".into());
    assert!(store.write_client("zeta", Some(&changed), &event(EventKind::ClientUpdated, "zeta")).await.expect("put"));
    let zeta = store.clients().await.expect("list").into_iter().find(|c| c.spec.id == "zeta").expect("exists");
    assert_eq!(zeta.spec, changed.spec);
    assert!(store.write_client("zeta", None, &event(EventKind::ClientDeleted, "zeta")).await.expect("delete"));
    assert!(!store.write_client("zeta", None, &event(EventKind::ClientDeleted, "zeta")).await.expect("delete"));
    assert_eq!(store.clients().await.expect("list").len(), 1);
    assert_eq!(events_tagged(&store, "client:zeta").await.len(), 4, "every write appends its event");

    // The families of a client, revoked ones included.
    let session = signed_in(&store, "alice", T0, keep()).await;
    redeemed(&store, &session, "w1", "web").await;
    redeemed(&store, &session, "w2", "web").await;
    redeemed(&store, &session, "s1", "spa").await;
    store.revoke_family("w1", &revoked("x"), &NoFallout).await.expect("revoke");
    let mut web: Vec<String> = store.client_families("web").await.expect("list").into_iter().map(|f| f.id).collect();
    web.sort();
    assert_eq!(web, ["w1", "w2"]);
    assert!(store.client_families("nope").await.expect("list").is_empty());
}

/// Deleting a stored user or client retires its name in the same step
/// (issue 17: a subject is never given again); a write that deletes nothing
/// retires nothing; tombstones survive a reopen.
pub async fn a_deletion_retires_the_name_for_good(b: &impl Backend) {
    let store = b.fresh().await;
    let event = |kind, target: &str| AuditEvent::new(T0, kind, "root", target.to_owned());
    store
        .write_user("bob", Some(&bob()), None, &Recorder, &event(EventKind::UserCreated, "user:bob"))
        .await
        .expect("put");
    assert_eq!(store.retired_name("bob").await.expect("read"), None, "a live user is not retired");
    store.write_user("bob", None, None, &Recorder, &event(EventKind::UserDeleted, "user:bob")).await.expect("delete");
    assert_eq!(store.retired_name("bob").await.expect("read"), Some(RetiredName::User));
    // Deleting what never existed retires nothing.
    store.write_user("nobody", None, None, &Recorder, &event(EventKind::UserDeleted, "user:nobody")).await.expect("x");
    assert_eq!(store.retired_name("nobody").await.expect("read"), None);

    let app = stored_client("app");
    store.write_client("app", Some(&app), &event(EventKind::ClientCreated, "client:app")).await.expect("put");
    assert_eq!(store.retired_name("app").await.expect("read"), None);
    store.write_client("app", None, &event(EventKind::ClientDeleted, "client:app")).await.expect("delete");
    assert_eq!(store.retired_name("app").await.expect("read"), Some(RetiredName::Client));
    store.write_client("ghost", None, &event(EventKind::ClientDeleted, "client:ghost")).await.expect("x");
    assert_eq!(store.retired_name("ghost").await.expect("read"), None);

    let store = b.reopen(store).await;
    assert_eq!(store.retired_name("bob").await.expect("read"), Some(RetiredName::User));
    assert_eq!(store.retired_name("app").await.expect("read"), Some(RetiredName::Client));
}

pub async fn old_events_and_markers_are_pruned(b: &impl Backend) {
    let store = b.fresh().await;
    for i in 0..4u64 {
        store
            .append_event(&AuditEvent::new(T0.plus(Secs::days(i)), EventKind::SignIn, "a", "user:a"))
            .await
            .expect("append");
    }
    let alice = signed_in(&store, "alice", T0, keep()).await;
    let bob = signed_in(&store, "bob", T0, keep()).await;
    store.revoke_user("alice", &revoked("x"), &NoFallout).await.expect("marker");
    store
        .revoke_user("bob", &Revoked { at: T0.plus(Secs::days(3)), reason: "x".into(), by: None }, &NoFallout)
        .await
        .expect("marker");
    let removed = store.prune_history(T0.plus(Secs::days(2)), T0.plus(Secs::days(1))).await.expect("prune");
    assert_eq!(removed, 3, "two events and alice's marker");
    let left: Vec<u64> =
        store.events_page(None, 10).await.expect("page").iter().map(|(_, e)| e.at.as_secs() - T0.as_secs()).collect();
    assert_eq!(left, [3 * 86_400, 2 * 86_400], "events from `before` on are kept");
    assert!(store.session(&bob.sid).await.expect("read").expect("exists").revoked.is_some(), "bob's marker is kept");
    // Alice's marker is gone (pruning assumes what it covered has expired).
    assert!(store.session(&alice.sid).await.expect("read").expect("exists").revoked.is_none());
    assert_eq!(store.prune_history(T0.plus(Secs::days(2)), T0.plus(Secs::days(1))).await.expect("prune"), 0);
}

pub async fn the_outbox_hands_out_due_deliveries_and_reschedules(b: &impl Backend) {
    let store = b.fresh().await;
    let (d1, d2, d3) = (logout("s1", T0), logout("s2", T0.plus(Secs::new(5))), logout("s3", T0));
    store.enqueue_deliveries(&[d1.clone(), d2.clone(), d3.clone()]).await.expect("enqueue");
    store.enqueue_deliveries(&[]).await.expect("nothing to queue");
    let due = store.due_deliveries(T0, 10).await.expect("due");
    assert_eq!(
        due.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>(),
        [d1.clone(), d3.clone()],
        "due now, oldest first"
    );
    assert_eq!(store.due_deliveries(T0, 1).await.expect("due").len(), 1, "limited");
    let all = store.due_deliveries(T0.plus(Secs::new(5)), 10).await.expect("due");
    assert_eq!(all.last().map(|(_, d)| d.clone()), Some(d2.clone()), "later ones after");
    let (id, old) = &due[0];
    let retry = Delivery { attempts: 1, next_attempt_at: T0.plus(Secs::new(15)), ..old.clone() };
    store.finish_attempt(*id, old, Some(&retry)).await.expect("reschedule");
    let now_due: Vec<Delivery> =
        store.due_deliveries(T0.plus(Secs::new(14)), 10).await.expect("due").into_iter().map(|(_, d)| d).collect();
    assert_eq!(now_due, [d3.clone(), d2.clone()], "the rescheduled one waits");
    let due = store.due_deliveries(T0.plus(Secs::new(15)), 10).await.expect("due");
    assert_eq!(due.len(), 3);
    let (rid, r) = due.iter().find(|(_, d)| d.attempts == 1).expect("rescheduled");
    assert_eq!(r, &retry);
    store.finish_attempt(*rid, r, None).await.expect("done");
    for (id, d) in store.due_deliveries(FAR, 10).await.expect("due") {
        store.finish_attempt(id, &d, None).await.expect("done");
    }
    assert!(store.due_deliveries(FAR, 10).await.expect("due").is_empty());
}

pub async fn the_set_queue_keeps_order_per_stream(b: &impl Backend) {
    let store = b.fresh().await;
    let (a1, a2, b1) = (queued("a", "u1", 100), queued("a", "u2", 101), queued("b", "u1", 100));
    let (sa, sb) = (stream("a"), stream("b"));
    store.put_ssf_stream(&sa).await.expect("stream");
    store.put_ssf_stream(&sb).await.expect("stream");
    assert_eq!(store.ssf_stream("a").await.expect("read"), Some(sa.clone()));
    let mut all: Vec<String> = store.ssf_streams().await.expect("streams").into_iter().map(|s| s.client_id).collect();
    all.sort();
    assert_eq!(all, ["a", "b"]);
    store.enqueue_sets(&[a1.clone(), b1.clone(), a2.clone()]).await.expect("enqueue");
    store.enqueue_sets(&[]).await.expect("nothing to queue");
    let a: Vec<QueuedSet> = store.queued_sets("a", 10).await.expect("queue").into_iter().map(|(_, s)| s).collect();
    assert_eq!(a, vec![a1.clone(), a2.clone()], "oldest first, only a's");
    assert_eq!(store.queued_sets("a", 1).await.expect("queue").len(), 1);

    // A failed push is rescheduled in place; an acknowledgement removes.
    let (id, first) = store.queued_sets("a", 1).await.expect("queue").remove(0);
    let later = first.after_failure(UnixTime(100));
    store.reschedule_set(id, &later).await.expect("reschedule");
    let queue = store.queued_sets("a", 10).await.expect("queue");
    assert_eq!(queue.iter().map(|(_, s)| s.jti.clone()).collect::<Vec<_>>(), [a1.jti.clone(), a2.jti.clone()]);
    assert_eq!(queue[0], (id, later), "in place: same id, same position");
    assert_eq!(store.remove_sets("a", &[a1.jti.clone(), b1.jti.clone()]).await.expect("ack"), 1, "only a's own");
    assert_eq!(store.remove_sets("a", &[]).await.expect("ack"), 0);
    assert_eq!(store.queued_sets("a", 10).await.expect("queue").len(), 1);
    assert_eq!(store.queued_sets("b", 10).await.expect("queue").len(), 1);

    // A signed SET is kept with its event, whatever else changed in the
    // record; an event gone stays gone.
    let (id2, second) = store.queued_sets("a", 1).await.expect("queue").remove(0);
    let signed = tenure::ssf::SignedSet { kid: "k1".into(), token: "h.c.s".into() };
    store.keep_signed_sets("a", &[(id2, signed.clone()), (id, signed.clone())]).await.expect("keep");
    let kept = store.queued_sets("a", 10).await.expect("queue");
    assert_eq!(kept.len(), 1, "acknowledged a1 is not written back");
    assert_eq!(kept[0], (id2, tenure::ssf::QueuedSet { signed: Some(signed.clone()), ..second.clone() }));
    let retried = kept[0].1.after_failure(UnixTime(102));
    store.reschedule_set(id2, &retried).await.expect("reschedule");
    assert_eq!(store.queued_sets("a", 1).await.expect("queue")[0].1.signed, Some(signed), "a retry keeps it");

    // Old events are dropped; deleting a stream drops its queue.
    assert_eq!(store.prune_sets(UnixTime(101)).await.expect("prune"), 1, "b1 was issued at 100");
    assert!(store.queued_sets("b", 10).await.expect("queue").is_empty());
    store.enqueue_sets(&[queued("b", "u3", 200)]).await.expect("enqueue");
    assert!(store.delete_ssf_stream("b").await.expect("delete"));
    assert!(!store.delete_ssf_stream("b").await.expect("delete"));
    assert!(store.queued_sets("b", 10).await.expect("queue").is_empty());
    assert_eq!(store.ssf_stream("b").await.expect("read"), None);
    assert_eq!(store.clear_sets("a").await.expect("clear"), 1);
    assert!(store.queued_sets("a", 10).await.expect("queue").is_empty());
    assert_eq!(store.ssf_stream("a").await.expect("read"), Some(sa), "clearing keeps the stream");
}

pub async fn admin_policy_and_history_round_trip(b: &impl Backend) {
    let store = b.fresh().await;
    assert!(store.admin_policy().await.expect("read").is_empty());
    assert_eq!(store.policy_history().await.expect("read"), None);
    let layer =
        PolicyLayer { max_lifetime: Some(Secs::hours(8)), idle_timeout: Some(IdleTimeout::Off), ..Default::default() };
    store.set_policy(Some(&layer), &history(2), Some(&settings_event(1))).await.expect("write");
    assert_eq!(store.admin_policy().await.expect("read"), layer);
    assert_eq!(store.policy_history().await.expect("read"), Some(history(2)));
    assert_eq!(events_tagged(&store, "settings:1").await, vec![settings_event(1)]);
    // `None` leaves the admin layer; no event appends none.
    store.set_policy(None, &history(3), None).await.expect("write");
    assert_eq!(store.admin_policy().await.expect("read"), layer);
    assert_eq!(store.policy_history().await.expect("read"), Some(history(3)));
    assert_eq!(store.events_page(None, 10).await.expect("events").len(), 1);
    // An empty layer resets it.
    store.set_policy(Some(&PolicyLayer::default()), &history(3), Some(&settings_event(3))).await.expect("reset");
    assert!(store.admin_policy().await.expect("read").is_empty());
}

/// SPEC 14: the group policies set through the admin API, written with
/// their audit event in one step, read back, replaced and emptied.
pub async fn admin_groups_round_trip_with_their_event(b: &impl Backend) {
    use std::collections::BTreeMap;
    use tenure::policy::GroupPolicy;
    let store = b.fresh().await;
    assert!(store.admin_groups().await.expect("read").is_empty());
    let admins = GroupPolicy { idle_timeout: Some(Secs::minutes(10)), max_sessions: Some(2), ..Default::default() };
    let ops = GroupPolicy { max_lifetime: Some(Secs::hours(2)), ..Default::default() };
    let groups: BTreeMap<String, GroupPolicy> =
        [("admins".to_owned(), admins.clone()), ("ops".to_owned(), ops)].into_iter().collect();
    store.set_admin_groups(&groups, &settings_event(7)).await.expect("write");
    assert_eq!(store.admin_groups().await.expect("read"), groups);
    assert_eq!(events_tagged(&store, "settings:7").await, vec![settings_event(7)]);
    let fewer: BTreeMap<String, GroupPolicy> = [("admins".to_owned(), admins)].into_iter().collect();
    store.set_admin_groups(&fewer, &settings_event(8)).await.expect("write");
    assert_eq!(store.admin_groups().await.expect("read"), fewer);
    store.set_admin_groups(&BTreeMap::new(), &settings_event(9)).await.expect("write");
    assert!(store.admin_groups().await.expect("read").is_empty());
    // The admin policy layer is another record.
    assert!(store.admin_policy().await.expect("read").is_empty());
    let store = b.reopen(store).await;
    assert!(store.admin_groups().await.expect("read").is_empty());
    assert_eq!(events_tagged(&store, "settings:9").await.len(), 1, "the event is durable with the change");
}

/// Everything the durability case reads back, as comparable text.
async fn snapshot<S: Store>(store: &S, sids: &[String], families: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for sid in sids {
        out.push(format!("{:?}", store.session(sid).await.expect("session")));
        out.push(format!("{:?}", store.session_families(sid).await.expect("families")));
    }
    for id in families {
        out.push(format!("{:?}", store.family(id).await.expect("family")));
    }
    out.push(format!("{:?}", store.code(b"code:f").await.expect("code")));
    out.push(format!("{:?}", store.user_sessions("alice").await.expect("user sessions")));
    out.push(format!("{:?}", store.events_page(None, ALL).await.expect("events")));
    out.push(format!("{:?}", store.due_deliveries(FAR, ALL).await.expect("outbox")));
    out.push(format!("{:?}", store.admin_policy().await.expect("admin")));
    out.push(format!("{:?}", store.policy_history().await.expect("history")));
    out.push(format!("{:?}", store.users().await.expect("users")));
    out.push(format!("{:?}", store.clients().await.expect("clients")));
    out.push(format!("{:?}", store.ssf_streams().await.expect("streams")));
    out.push(format!("{:?}", store.queued_sets(RECEIVER, ALL).await.expect("sets")));
    out
}

pub async fn everything_survives_a_reopen(b: &impl Backend) {
    let store = b.fresh().await;
    let s = signed_in(&store, "alice", T0, keep()).await;
    redeemed(&store, &s, "f", "web").await;
    redeemed(&store, &s, "g", "web").await;
    assert!(matches!(
        refresh(&store, "f", 1, T0.plus(Secs::minutes(3)), Secs::ZERO).await,
        Some(RefreshDecision::Rotate(_))
    ));
    store.revoke_family("g", &revoked("admin_revoked"), &Recorder).await.expect("revoke");
    store.touch_session(&s.sid, T0.plus(Secs::minutes(4))).await.expect("touch");
    let gone = signed_in(&store, "alice", T0, keep()).await;
    store.revoke_session(&gone.sid, &revoked("logout"), &Recorder).await.expect("revoke");
    let marked = signed_in(&store, "carol", T0, keep()).await;
    let seq = store.revoke_user("carol", &revoked("compromised"), &Recorder).await.expect("revoke");
    let layer = PolicyLayer { max_lifetime: Some(Secs::hours(8)), ..Default::default() };
    store.set_policy(Some(&layer), &history(2), Some(&settings_event(1))).await.expect("settings");
    store
        .write_user(
            "bob",
            Some(&bob()),
            None,
            &Recorder,
            &AuditEvent::new(T0, EventKind::UserCreated, "root", "user:bob"),
        )
        .await
        .expect("user");
    store
        .write_client(
            "app",
            Some(&stored_client("app")),
            &AuditEvent::new(T0, EventKind::ClientCreated, "root", "client:app"),
        )
        .await
        .expect("client");
    store.append_event(&AuditEvent::new(T0, EventKind::SignIn, "alice", "user:alice")).await.expect("event");
    store.enqueue_deliveries(&[logout("x", T0)]).await.expect("outbox");
    store.put_ssf_stream(&stream(RECEIVER)).await.expect("stream");
    store.enqueue_sets(&[queued(RECEIVER, "u", 100)]).await.expect("set");

    let sids = [s.sid.clone(), gone.sid.clone(), marked.sid.clone()];
    let before = snapshot(&store, &sids, &["f", "g"]).await;
    let store = b.reopen(store).await;
    let after = snapshot(&store, &sids, &["f", "g"]).await;
    for (was, is) in before.iter().zip(&after) {
        assert_eq!(was, is);
    }
    assert_eq!(before.len(), after.len());
    // Spot checks of what the snapshot holds.
    assert_eq!(store.family("f").await.expect("read").expect("exists").generation, 2);
    assert!(store.session(&marked.sid).await.expect("read").expect("exists").revoked.is_some(), "the marker");
    assert_eq!(effects_of(&store, &format!("user:carol:{seq}")).await, (1, 1, 1));
    assert_eq!(store.session(&s.sid).await.expect("read").expect("exists").last_active, T0.plus(Secs::minutes(4)));
    assert_eq!(store.admin_policy().await.expect("read"), layer);
    // A session stored after the reopen is still after the marker.
    let fresh = signed_in(&store, "carol", T0, keep()).await;
    assert!(fresh.revoked.is_none() && fresh.seq > seq, "sequences keep growing across a restart");
}

pub async fn sweeping_removes_exactly_what_expired(b: &impl Backend) {
    let store = b.fresh().await;
    let hour = T0.plus(Secs::hours(1));
    let short = signed_in(&store, "alice", T0, hour).await;
    let long = signed_in(&store, "alice", T0, keep()).await;
    // Stored again with a later keep_until: the later one counts.
    let mut extended = signed_in(&store, "alice", T0, hour).await;
    store.put_session(&extended, keep()).await.expect("extend");
    extended = store.session(&extended.sid).await.expect("read").expect("exists");

    // Codes are kept CODE_RECORD_TTL after issue; families until keep_until.
    store.put_code(b"old", &code_for(&long, "web", T0)).await.expect("code");
    store.put_code(b"new", &code_for(&long, "web", hour)).await.expect("code");
    store.put_code(b"fs", &code_for(&short, "web", T0)).await.expect("code");
    store.redeem_code(b"fs", &family_in(&short, "fs", "web"), hour, T0, &NoFallout).await.expect("redeem");
    store.put_code(b"fl", &code_for(&long, "web", T0)).await.expect("code");
    store.redeem_code(b"fl", &family_in(&long, "fl", "web"), keep(), T0, &NoFallout).await.expect("redeem");
    // A revoked session is swept by its keep_until like any other.
    store.revoke_session(&short.sid, &revoked("logout"), &NoFallout).await.expect("revoke");

    let code_gone = T0.plus(CODE_RECORD_TTL);
    assert_eq!(store.sweep_expired(T0).await.expect("sweep"), 0);
    assert_eq!(store.sweep_expired(UnixTime(code_gone.as_secs() - 1)).await.expect("sweep"), 0);
    assert!(store.code(b"old").await.expect("read").is_some());

    assert!(store.sweep_expired(code_gone).await.expect("sweep") >= 3, "codes old, fs, fl");
    for key in [&b"old"[..], b"fs", b"fl"] {
        assert!(store.code(key).await.expect("read").is_none(), "{key:?} swept");
    }
    assert!(store.code(b"new").await.expect("read").is_some(), "issued later, kept");
    assert!(store.session(&short.sid).await.expect("read").is_some());
    assert!(store.family("fs").await.expect("read").is_some());

    assert!(store.sweep_expired(hour).await.expect("sweep") >= 2, "the short session and its family");
    assert_eq!(store.session(&short.sid).await.expect("read"), None);
    assert_eq!(store.family("fs").await.expect("read"), None);
    assert!(store.session_families(&short.sid).await.expect("index").is_empty());
    assert!(store.client_families("web").await.expect("list").iter().all(|f| f.id != "fs"));
    let mut left: BTreeSet<String> =
        store.user_sessions("alice").await.expect("list").into_iter().map(|s| s.sid).collect();
    assert_eq!(left, BTreeSet::from([long.sid.clone(), extended.sid.clone()]));
    left = store.all_sessions().await.expect("all").into_iter().map(|s| s.sid).collect();
    assert_eq!(left, BTreeSet::from([long.sid.clone(), extended.sid.clone()]));
    assert_eq!(
        store.session(&extended.sid).await.expect("read"),
        Some(extended.clone()),
        "its later keep_until counts"
    );
    assert!(store.family("fl").await.expect("read").is_some());
    assert_eq!(store.session_families(&long.sid).await.expect("index").len(), 1);
    assert!(store.code(b"new").await.expect("read").is_some(), "not yet: issued at +1 h");
    assert_eq!(store.sweep_expired(hour).await.expect("sweep"), 0, "nothing left to sweep");

    assert!(store.sweep_expired(keep()).await.expect("sweep") >= 4);
    assert!(store.all_sessions().await.expect("all").is_empty());
    assert_eq!(store.family("fl").await.expect("read"), None);
    assert_eq!(store.code(b"new").await.expect("read"), None);
    assert!(store.user_sessions("alice").await.expect("list").is_empty());
}

// ---- the session limit (SPEC 14) ----

/// The decision of a sign-in under `max` sessions at `T0 + 1 s` (every
/// session signed in at `T0` is live then).
fn limited(max: u64, on_limit: OnSessionLimit) -> impl Fn(&[UserSession]) -> Admit + Send + Sync {
    let history = PolicyHistory::new(T0, SessionPolicy::default());
    move |sessions: &[UserSession]| {
        admit(SessionLimit { max, on_limit }, &history, sessions, None, T0.plus(Secs::new(1)))
    }
}

/// A sign-in of `user` at `at` under `max` sessions.
async fn start_limited<S: Store>(
    store: &S,
    user: &str,
    at: UnixTime,
    max: u64,
    on_limit: OnSessionLimit,
) -> (UserSession, Admission) {
    let (s, _) = UserSession::start(user, false, None, None, at).expect("rng");
    let outcome = store
        .start_session(&s, keep(), limited(max, on_limit), &revoked("session_limit"), &Recorder)
        .await
        .expect("start session");
    (s, outcome)
}

/// `user`'s sessions that are not revoked.
async fn live_sids<S: Store>(store: &S, user: &str) -> BTreeSet<String> {
    let sessions = store.user_sessions(user).await.expect("sessions");
    sessions.into_iter().filter(|s| s.revoked.is_none()).map(|s| s.sid).collect()
}

pub async fn a_sign_in_under_the_limit_ends_the_least_recently_active_with_its_effects(b: &impl Backend) {
    let store = b.fresh().await;
    // One from before any limit (a plain put), one started under it, and
    // another user's, which never counts.
    let oldest = signed_in(&store, "alice", T0, keep()).await;
    redeemed(&store, &oldest, "f-old", "web").await;
    store.touch_session(&oldest.sid, T0).await.expect("touch");
    let bob = signed_in(&store, "bob", T0, keep()).await;
    let (second, outcome) = start_limited(&store, "alice", T0.plus(Secs::new(1)), 2, OnSessionLimit::EndOldest).await;
    assert_eq!(outcome, Admission::Started { ended: vec![] }, "below the limit nothing ends");
    let (third, outcome) = start_limited(&store, "alice", T0.plus(Secs::new(1)), 2, OnSessionLimit::EndOldest).await;
    let Admission::Started { ended } = outcome else { panic!("{outcome:?}") };
    assert_eq!(ended.iter().map(|s| s.sid.as_str()).collect::<Vec<_>>(), [oldest.sid.as_str()], "the oldest ends");
    assert_eq!(ended[0].revoked, Some(revoked("session_limit")));
    let tag = format!("session:{}", oldest.sid);
    assert_eq!(effects_of(&store, &tag).await, (1, 1, 1), "its logout, feed event and audit, once");
    let event = events_tagged(&store, &tag).await.remove(0);
    assert_eq!(event.reason.as_deref(), Some("session_limit"));
    assert_eq!(event.details["live"], serde_json::json!(["f-old"]), "the fallout got its live families");
    assert_eq!(live_sids(&store, "alice").await, BTreeSet::from([second.sid.clone(), third.sid.clone()]));
    let refused = refresh(&store, "f-old", 1, T0, Secs::ZERO).await;
    assert!(matches!(&refused, Some(RefreshDecision::Ended(e)) if e.reason == EndReason::SessionLimit), "{refused:?}");
    assert!(store.session(&bob.sid).await.expect("read").expect("exists").revoked.is_none(), "bob's stays");
    // `ask` without a choice stores nothing and lists the live sessions.
    let (fourth, outcome) = start_limited(&store, "alice", T0.plus(Secs::new(1)), 2, OnSessionLimit::Ask).await;
    let Admission::AtLimit { live } = outcome else { panic!("{outcome:?}") };
    assert_eq!(live.len(), 2);
    assert!(store.session(&fourth.sid).await.expect("read").is_none(), "nothing stored at the limit");
    // A user revocation (a marker) frees every place.
    store.revoke_user("alice", &revoked("user_revoked"), &NoFallout).await.expect("revoke user");
    let (fifth, outcome) = start_limited(&store, "alice", T0.plus(Secs::new(1)), 2, OnSessionLimit::Ask).await;
    assert_eq!(outcome, Admission::Started { ended: vec![] });
    assert_eq!(live_sids(&store, "alice").await, BTreeSet::from([fifth.sid]));
    // Durable: the same after a reopen.
    let store = b.reopen(store).await;
    assert_eq!(effects_of(&store, &tag).await, (1, 1, 1));
}

async fn race_sign_ins<B: Backend>(b: &B, before: usize, max: u64, on_limit: OnSessionLimit) -> (B::S, Vec<Admission>) {
    let store = b.fresh().await;
    for _ in 0..before {
        start_limited(&store, "alice", T0, max, on_limit).await;
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(32));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (store, barrier) = (store.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            start_limited(&store, "alice", T0, max, on_limit).await.1
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.expect("join"));
    }
    (store, outcomes)
}

pub async fn of_32_concurrent_sign_ins_at_the_limit_exactly_the_limit_stay_live(b: &impl Backend) {
    let (store, outcomes) = race_sign_ins(b, 3, 3, OnSessionLimit::EndOldest).await;
    assert!(outcomes.iter().all(|o| matches!(o, Admission::Started { .. })), "{outcomes:?}");
    let live = live_sids(&store, "alice").await;
    assert_eq!(live.len(), 3, "exactly max_sessions live: {live:?}");
    let ended: Vec<&UserSession> = outcomes
        .iter()
        .flat_map(|o| match o {
            Admission::Started { ended } => ended.iter(),
            _ => [].iter(),
        })
        .collect();
    assert_eq!(ended.len(), 32, "each sign-in ended one: {}", ended.len());
    let distinct: BTreeSet<&str> = ended.iter().map(|s| s.sid.as_str()).collect();
    assert_eq!(distinct.len(), 32, "no session ended twice");
    for sid in distinct {
        assert_eq!(effects_of(&store, &format!("session:{sid}")).await, (1, 1, 1), "one set of effects for {sid}");
    }
}

pub async fn of_32_concurrent_sign_ins_that_ask_at_the_limit_one_gets_the_last_place(b: &impl Backend) {
    let (store, outcomes) = race_sign_ins(b, 2, 3, OnSessionLimit::Ask).await;
    let started = outcomes.iter().filter(|o| matches!(o, Admission::Started { ended } if ended.is_empty())).count();
    let at_limit = outcomes.iter().filter(|o| matches!(o, Admission::AtLimit { live } if live.len() == 3)).count();
    assert_eq!((started, at_limit), (1, 31), "{outcomes:?}");
    assert_eq!(live_sids(&store, "alice").await.len(), 3);
}

// --- Device authorization requests (SPEC 15) ---

/// The stand-ins for a device code's and a user code's SHA-256.
fn device_keys(n: u8) -> ([u8; 32], [u8; 32]) {
    ([n; 32], [n.wrapping_add(100); 32])
}

const DEVICE_TTL: Secs = Secs::minutes(10);

/// The audit event a person's answer writes (tagged `tag`).
fn answered_event(tag: &str) -> AuditEvent {
    AuditEvent::new(T0, EventKind::DeviceApproved, "contract", tag)
}

fn approval_of(session: &UserSession, at: UnixTime) -> Approval {
    Approval {
        username: session.username.clone(),
        sid: session.sid.clone(),
        auth_time: session.signed_in,
        remember_me: session.remember_me,
        at,
    }
}

/// What the device grant does with an approval: family `id` of `cli` in
/// the approving session (a pure function of the approval).
fn device_family(id: &'static str) -> impl Fn(&Approval) -> (Family, UnixTime) + Send + Sync {
    move |a: &Approval| {
        let f = Family {
            id: id.into(),
            salt: "salt".into(),
            sid: a.sid.clone(),
            username: a.username.clone(),
            client_id: "cli".into(),
            scope: "openid".into(),
            auth_time: a.auth_time,
            remember_me: a.remember_me,
            created_at: a.at,
            generation: 1,
            rotated_at: a.at,
            active_at: None,
            issues_refresh_tokens: true,
            revoked: None,
            jkt: None,
        };
        (f, keep())
    }
}

pub async fn device_requests_are_answered_once_and_redeemed_once(b: &impl Backend) {
    let store = b.fresh().await;
    let session = signed_in(&store, "alice", T0, keep()).await;
    let (device, user) = device_keys(1);
    let request = DeviceRequest::new("cli", "openid profile", T0, DEVICE_TTL);
    assert!(store.put_device_request(&device, &user, &request).await.expect("put"));
    let (other_device, _) = device_keys(2);
    assert!(
        !store.put_device_request(&other_device, &user, &request).await.expect("put"),
        "a user code on record is not given twice"
    );
    assert_eq!(store.device_request(&other_device).await.expect("read"), None, "nothing written");
    assert_eq!(store.device_request(&device).await.expect("read"), Some(request.clone()));
    assert_eq!(store.device_request_by_user_code(&user).await.expect("read"), Some(request.clone()));

    // Polling: pending, then too soon (slow_down, remembered), then pending.
    let poll = |at: u64, client: &'static str| {
        let store = store.clone();
        async move {
            store
                .poll_device(&device, client, T0.plus(Secs::new(at)), device_family("d1"), &Recorder)
                .await
                .expect("poll")
        }
    };
    assert_eq!(poll(1, "cli").await, DevicePoll::Pending);
    assert_eq!(poll(2, "cli").await, DevicePoll::SlowDown { interval: Secs::new(10) });
    assert_eq!(store.device_request(&device).await.expect("read").expect("kept").interval, Secs::new(10), "remembered");
    assert_eq!(poll(12, "cli").await, DevicePoll::Pending);
    assert_eq!(poll(13, "other").await, DevicePoll::NotFound, "another client's device code is unknown to it");
    assert_eq!(
        store.device_request(&device).await.expect("read").expect("kept").last_poll,
        Some(T0.plus(Secs::new(12)))
    );

    // The answer: once.
    let approval = approval_of(&session, T0.plus(Secs::new(20)));
    let answered = store
        .answer_device_request(&user, Some(&approval), T0.plus(Secs::new(20)), &answered_event("device:answer"))
        .await
        .expect("answer");
    assert!(matches!(&answered, DeviceAnswer::Answered(r) if r.state == DeviceState::Approved(approval.clone())));
    let again = store
        .answer_device_request(&user, None, T0.plus(Secs::new(21)), &answered_event("device:answer"))
        .await
        .expect("answer");
    assert!(matches!(&again, DeviceAnswer::Closed(r) if r.state == DeviceState::Approved(approval.clone())));
    assert_eq!(
        store.answer_device_request(&[9; 32], None, T0, &answered_event("device:answer")).await.expect("answer"),
        DeviceAnswer::NotFound
    );
    assert_eq!(
        events_tagged(&store, "device:answer").await.len(),
        1,
        "the answer's event, once: none when closed or unknown"
    );

    // Redeemed once: the family joins its session, which records activity.
    let issued = poll(30, "cli").await;
    let DevicePoll::Issued { family, superseded } = issued else { panic!("{issued:?}") };
    assert_eq!((family.id.as_str(), family.sid.as_str(), superseded.len()), ("d1", session.sid.as_str(), 0));
    assert_eq!(store.family("d1").await.expect("read"), Some(*family));
    let in_session: Vec<String> =
        store.session_families(&session.sid).await.expect("index").into_iter().map(|f| f.id).collect();
    assert_eq!(in_session, ["d1"]);
    assert_eq!(store.session(&session.sid).await.expect("read").expect("live").last_active, T0.plus(Secs::new(30)));
    let stored = store.device_request(&device).await.expect("read").expect("kept");
    assert_eq!(stored.state, DeviceState::Redeemed { at: T0.plus(Secs::new(30)), family_id: "d1".into() });
    assert_eq!(poll(40, "cli").await, DevicePoll::Used);
    assert_eq!(poll(DEVICE_TTL.as_secs() + 5, "cli").await, DevicePoll::Used, "used, whatever the time");

    // A later approval of the same client in the same session supersedes
    // like any family, with its fallout.
    let store = b.reopen(store).await;
    assert_eq!(store.device_request(&device).await.expect("read"), Some(stored), "durable");
    let (device2, user2) = device_keys(3);
    store
        .put_device_request(&device2, &user2, &DeviceRequest::new("cli", "openid", T0, DEVICE_TTL))
        .await
        .expect("put");
    for i in 0..MAX_FAMILIES_PER_CLIENT {
        redeemed(&store, &session, ["c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"][i], "cli").await;
    }
    store
        .answer_device_request(&user2, Some(&approval), T0.plus(Secs::new(50)), &answered_event("device:answer"))
        .await
        .expect("answer");
    let issued =
        store.poll_device(&device2, "cli", T0.plus(Secs::new(60)), device_family("d2"), &Recorder).await.expect("poll");
    let DevicePoll::Issued { superseded, .. } = issued else { panic!("{issued:?}") };
    assert!(!superseded.is_empty(), "the session keeps only the newest families of a client");
    for f in &superseded {
        assert_eq!(effects_of(&store, &format!("superseded:{}", f.id)).await, (1, 1, 1));
    }
}

pub async fn a_device_request_denied_or_expired_ends_the_polling_and_is_swept(b: &impl Backend) {
    let store = b.fresh().await;
    let session = signed_in(&store, "alice", T0, keep()).await;
    let (denied, denied_user) = device_keys(1);
    let (expired, expired_user) = device_keys(2);
    let request = DeviceRequest::new("cli", "openid", T0, DEVICE_TTL);
    store.put_device_request(&denied, &denied_user, &request).await.expect("put");
    store.put_device_request(&expired, &expired_user, &request).await.expect("put");
    let poll = |key: [u8; 32], at: UnixTime| {
        let store = store.clone();
        async move { store.poll_device(&key, "cli", at, device_family("never"), &Recorder).await.expect("poll") }
    };
    let answer = store
        .answer_device_request(&denied_user, None, T0.plus(Secs::new(5)), &answered_event("device:answer"))
        .await
        .expect("deny");
    assert!(matches!(&answer, DeviceAnswer::Answered(r) if matches!(r.state, DeviceState::Denied { .. })));
    assert_eq!(poll(denied, T0.plus(Secs::new(6))).await, DevicePoll::Denied);
    assert_eq!(poll(denied, T0.plus(Secs::new(30))).await, DevicePoll::Denied, "for good");

    let end = T0.plus(DEVICE_TTL);
    let late = store
        .answer_device_request(&expired_user, Some(&approval_of(&session, end)), end, &answered_event("device:answer"))
        .await
        .expect("late");
    assert!(
        matches!(&late, DeviceAnswer::Closed(r) if r.state == DeviceState::Pending),
        "an expired code cannot be approved"
    );
    assert_eq!(poll(expired, end).await, DevicePoll::Expired);
    assert_eq!(store.family("never").await.expect("read"), None);

    // Kept a while after expiry (a late poll still hears expired_token), then swept.
    let swept = end.plus(RECORD_KEPT_AFTER_EXPIRY);
    store.sweep_expired(UnixTime(swept.as_secs() - 1)).await.expect("sweep");
    assert!(store.device_request(&expired).await.expect("read").is_some());
    assert!(store.sweep_expired(swept).await.expect("sweep") >= 2);
    for (device, user) in [(denied, denied_user), (expired, expired_user)] {
        assert_eq!(store.device_request(&device).await.expect("read"), None);
        assert_eq!(store.device_request_by_user_code(&user).await.expect("read"), None);
    }
    assert!(
        store.put_device_request(&expired, &expired_user, &request).await.expect("put"),
        "the user code is free again"
    );
}

pub async fn of_32_concurrent_polls_after_approval_one_gets_the_tokens(b: &impl Backend) {
    let store = b.fresh().await;
    let session = signed_in(&store, "alice", T0, keep()).await;
    let (device, user) = device_keys(1);
    store.put_device_request(&device, &user, &DeviceRequest::new("cli", "openid", T0, DEVICE_TTL)).await.expect("put");
    store
        .answer_device_request(
            &user,
            Some(&approval_of(&session, T0)),
            T0.plus(Secs::new(1)),
            &answered_event("device:answer"),
        )
        .await
        .expect("ok");
    let barrier = Arc::new(tokio::sync::Barrier::new(32));
    let mut tasks = Vec::new();
    for i in 0..32u64 {
        let (store, barrier) = (store.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let ids: &'static str = Box::leak(format!("race{i}").into_boxed_str());
            store
                .poll_device(&device, "cli", T0.plus(Secs::new(10)), device_family(ids), &Recorder)
                .await
                .expect("poll")
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.expect("join"));
    }
    let issued: Vec<&Family> = outcomes
        .iter()
        .filter_map(|o| match o {
            DevicePoll::Issued { family, .. } => Some(&**family),
            _ => None,
        })
        .collect();
    assert_eq!(issued.len(), 1, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| **o == DevicePoll::Used).count(), 31, "{outcomes:?}");
    let in_session: Vec<String> =
        store.session_families(&session.sid).await.expect("index").into_iter().map(|f| f.id).collect();
    assert_eq!(in_session, [issued[0].id.clone()], "one family, no other");
    let stored = store.device_request(&device).await.expect("read").expect("kept");
    assert!(matches!(stored.state, DeviceState::Redeemed { ref family_id, .. } if *family_id == issued[0].id));
}

// --- Nothing per process (SPEC 12): console sessions, pending sign-ins,
// DPoP proofs seen ---

fn console_record(pending: bool, created: UnixTime, expires_at: UnixTime, body: &[u8]) -> ConsoleSessionRecord {
    ConsoleSessionRecord { pending, created, expires_at, sealed: body.to_vec() }
}

fn key32(n: u32) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..4].copy_from_slice(&n.to_be_bytes());
    k[31] = 0xc5;
    k
}

pub async fn a_console_session_is_replaced_by_version_and_taken_once(b: &impl Backend) {
    let store = b.fresh().await;
    let later = T0.plus(Secs::hours(1));
    let first = console_record(true, T0, later, b"pending");
    store.put_console_session(&key32(1), &first, 100, T0).await.unwrap();
    assert_eq!(store.console_session(&key32(1), T0).await.unwrap(), Some((0, first.clone())));
    assert_eq!(store.console_session(&key32(2), T0).await.unwrap(), None);
    assert_eq!(store.console_session(&key32(1), later).await.unwrap(), None, "expired at expires_at");

    let active = console_record(false, T0, later, b"active");
    assert!(store.replace_console_session(&key32(1), 0, &active).await.unwrap());
    assert!(!store.replace_console_session(&key32(1), 0, &first).await.unwrap(), "a stale version loses");
    assert_eq!(store.console_session(&key32(1), T0).await.unwrap(), Some((1, active.clone())));
    assert!(!store.replace_console_session(&key32(9), 0, &active).await.unwrap(), "nothing to replace");

    // Of 16 writers racing from one version, one wins.
    let racers = (0..16u8).map(|i| {
        let store = store.clone();
        let rec = console_record(false, T0, later, &[i]);
        tokio::spawn(async move { store.replace_console_session(&key32(1), 1, &rec).await.unwrap() })
    });
    let mut won = 0;
    for r in racers {
        won += usize::from(r.await.unwrap());
    }
    assert_eq!(won, 1);
    let (version, _) = store.console_session(&key32(1), T0).await.unwrap().unwrap();
    assert_eq!(version, 2);

    assert_eq!(store.remove_console_session(&key32(1), Some(1)).await.unwrap(), None, "only at its version");
    assert!(store.remove_console_session(&key32(1), Some(2)).await.unwrap().is_some());
    assert_eq!(store.remove_console_session(&key32(1), None).await.unwrap(), None, "taken once");
    assert_eq!(store.console_session(&key32(1), T0).await.unwrap(), None);

    // A put replaces the record and its version.
    store.put_console_session(&key32(3), &first, 100, T0).await.unwrap();
    assert!(store.replace_console_session(&key32(3), 0, &active).await.unwrap());
    store.put_console_session(&key32(3), &first, 100, T0).await.unwrap();
    assert_eq!(store.console_session(&key32(3), T0).await.unwrap(), Some((0, first)));
    // Of 16 takers at once, one gets it.
    let takers = (0..16).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.remove_console_session(&key32(3), None).await.unwrap().is_some() })
    });
    let mut got = 0;
    for t in takers {
        got += usize::from(t.await.unwrap());
    }
    assert_eq!(got, 1);
}

pub async fn console_sessions_are_bounded_and_unfinished_sign_ins_go_first(b: &impl Backend) {
    let store = b.fresh().await;
    const MAX: usize = 5;
    let far = T0.plus(Secs::days(1));
    let live = |k: u32, now: UnixTime| {
        let store = store.clone();
        async move { store.console_session(&key32(k), now).await.unwrap().is_some() }
    };
    store.put_console_session(&key32(0), &console_record(false, T0, far, b"signed in"), MAX, T0).await.unwrap();
    // A flood of sign-ins never pushes out the signed-in user.
    for k in 1..40 {
        let at = T0.plus(Secs::new(u64::from(k)));
        store.put_console_session(&key32(k), &console_record(true, at, far, b"visitor"), MAX, at).await.unwrap();
    }
    assert!(live(0, T0).await, "a flood of sign-ins does not push out a signed-in user");
    assert!(live(39, T0).await, "the newest sign-in is kept");
    assert!(!live(1, T0).await, "the oldest sign-in went");
    let mut kept = 0;
    for k in 0..40 {
        kept += usize::from(live(k, T0).await);
    }
    assert!(kept <= MAX, "{kept} kept");

    for k in 0..40 {
        store.remove_console_session(&key32(k), None).await.unwrap();
    }

    // Signed-in users only: the oldest goes.
    for k in 100..100 + MAX as u32 + 1 {
        let at = T0.plus(Secs::new(u64::from(k)));
        store.put_console_session(&key32(k), &console_record(false, at, far, b"user"), MAX, at).await.unwrap();
    }
    assert!(store.console_session(&key32(100), T0).await.unwrap().is_none(), "the oldest went");
    assert!(store.console_session(&key32(101), T0).await.unwrap().is_some());
    assert!(store.console_session(&key32(105), T0).await.unwrap().is_some());

    for k in 100..100 + MAX as u32 + 1 {
        store.remove_console_session(&key32(k), None).await.unwrap();
    }

    // Expired ones make room first.
    let store3 = store.clone();
    let soon = T0.plus(Secs::new(10));
    for k in 200..200 + MAX as u32 {
        store3.put_console_session(&key32(k), &console_record(false, T0, soon, b"user"), MAX, T0).await.unwrap();
    }
    store3.put_console_session(&key32(300), &console_record(true, soon, far, b"new"), MAX, soon).await.unwrap();
    store3.put_console_session(&key32(301), &console_record(true, soon, far, b"new"), MAX, soon).await.unwrap();
    assert!(store3.console_session(&key32(300), soon).await.unwrap().is_some(), "the expired made room");
    assert!(store3.console_session(&key32(301), soon).await.unwrap().is_some());
}

fn pending(browser: u8, expires_at: UnixTime) -> PendingSignInRecord {
    PendingSignInRecord {
        username: "alice".into(),
        remember_me: true,
        user_agent: Some("Firefox".into()),
        remote: "127.0.0.1".into(),
        resume: "client_id=web".into(),
        browser: [browser; 32],
        expires_at,
    }
}

pub async fn a_pending_sign_in_is_taken_once_by_its_own_browser_and_pending_ones_are_bounded(b: &impl Backend) {
    let store = b.fresh().await;
    let ttl = Secs::minutes(5);
    assert!(store.put_pending_sign_in(&key32(1), &pending(1, T0.plus(ttl)), 10, T0).await.unwrap());
    assert_eq!(store.take_pending_sign_in(&key32(1), &[2; 32], T0).await.unwrap(), None, "another browser's");
    assert_eq!(
        store.take_pending_sign_in(&key32(1), &[1; 32], T0).await.unwrap(),
        Some(pending(1, T0.plus(ttl))),
        "its own browser's, as it was kept"
    );
    assert_eq!(store.take_pending_sign_in(&key32(1), &[1; 32], T0).await.unwrap(), None, "used once");
    assert!(store.put_pending_sign_in(&key32(2), &pending(1, T0.plus(ttl)), 10, T0).await.unwrap());
    assert_eq!(store.take_pending_sign_in(&key32(2), &[1; 32], T0.plus(ttl)).await.unwrap(), None, "expired");
    assert_eq!(store.take_pending_sign_in(&key32(77), &[1; 32], T0).await.unwrap(), None, "unknown");

    // Bounded: full of live ones, a new one is refused; expired ones make room.
    let soon = T0.plus(Secs::new(10));
    for k in 10..15 {
        assert!(store.put_pending_sign_in(&key32(k), &pending(3, soon), 5, T0).await.unwrap());
    }
    assert!(!store.put_pending_sign_in(&key32(20), &pending(3, soon), 5, T0).await.unwrap(), "full");
    assert!(store.put_pending_sign_in(&key32(21), &pending(3, soon.plus(ttl)), 5, soon).await.unwrap());
    assert!(store.take_pending_sign_in(&key32(21), &[3; 32], soon).await.unwrap().is_some());

    // Of 16 takers at once, one gets it.
    assert!(store.put_pending_sign_in(&key32(30), &pending(4, T0.plus(ttl)), 100, T0).await.unwrap());
    let takers = (0..16).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.take_pending_sign_in(&key32(30), &[4; 32], T0).await.unwrap().is_some() })
    });
    let mut got = 0;
    for t in takers {
        got += usize::from(t.await.unwrap());
    }
    assert_eq!(got, 1);
}

pub async fn a_dpop_proof_is_remembered_once_even_by_32_racing_replicas(b: &impl Backend) {
    let store = b.fresh().await;
    let until = T0.plus(Secs::new(61));
    assert!(store.remember_proof(&[1; 16], until, T0).await.unwrap(), "new");
    assert!(!store.remember_proof(&[1; 16], until, T0).await.unwrap(), "a replay");
    assert!(!store.remember_proof(&[1; 16], until, until).await.unwrap(), "still a replay at its last second");
    assert!(store.remember_proof(&[2; 16], until, T0).await.unwrap(), "another proof");
    assert!(
        store.remember_proof(&[1; 16], until.plus(Secs::new(61)), until.plus(Secs::new(1))).await.unwrap(),
        "forgotten once expired"
    );

    let racers = (0..32).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.remember_proof(&[9; 16], until, T0).await.unwrap() })
    });
    let mut accepted = 0;
    for r in racers {
        accepted += usize::from(r.await.unwrap());
    }
    assert_eq!(accepted, 1, "of 32 replicas remembering one proof at once, one accepts it");
}

pub async fn what_pages_and_dpop_remember_expires_and_survives_a_reopen(b: &impl Backend) {
    let store = b.fresh().await;
    let soon = T0.plus(Secs::new(10));
    let far = T0.plus(Secs::days(1));
    store.put_console_session(&key32(1), &console_record(false, T0, soon, b"short"), 100, T0).await.unwrap();
    store.put_console_session(&key32(2), &console_record(false, T0, far, b"long"), 100, T0).await.unwrap();
    assert!(store.put_pending_sign_in(&key32(1), &pending(1, soon), 100, T0).await.unwrap());
    assert!(store.put_pending_sign_in(&key32(2), &pending(1, far), 100, T0).await.unwrap());
    assert!(store.remember_proof(&[1; 16], soon, T0).await.unwrap());
    assert!(store.remember_proof(&[2; 16], far, T0).await.unwrap());

    let store = b.reopen(store).await;
    assert!(store.console_session(&key32(2), T0).await.unwrap().is_some(), "a console session survives a restart");
    store.sweep_expired(soon).await.unwrap();
    // Read at T0: only the sweep can have removed them.
    assert_eq!(store.console_session(&key32(1), T0).await.unwrap(), None, "swept");
    assert!(store.console_session(&key32(2), T0).await.unwrap().is_some(), "alive");
    assert_eq!(store.take_pending_sign_in(&key32(1), &[1; 32], T0).await.unwrap(), None, "swept");
    assert!(store.take_pending_sign_in(&key32(2), &[1; 32], T0).await.unwrap().is_some(), "alive");
    assert!(store.remember_proof(&[1; 16], soon, T0).await.unwrap(), "swept: new again");
    assert!(!store.remember_proof(&[2; 16], far, T0).await.unwrap(), "alive: a replay");
}
