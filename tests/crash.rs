//! SIGKILL atomicity (issue #8): a revocation, a reuse kill and a settings
//! change each leave their audit event, outbox delivery and feed event
//! after a SIGKILL at any point: either all of it, with the state, or none.
//!
//! The test runs its own test binary again as a child ([`crash_child`],
//! selected by name, switched on by `TENURE_CRASH_CHILD=<store dir>`) that
//! loops over those transitions on a sled store with the real
//! [`tenure::service::revocation::Fallout`] and prints a line after each durable
//! return. The parent kills it with SIGKILL a random 50-400 ms after it
//! opened the store, five times, and after each kill opens the store and
//! checks, through the `Store` trait, that every effect matches its state
//! and every reported transition is there.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, RandomState};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tenure::audit::{AuditEvent, EventKind};
use tenure::clock::UnixTime;
use tenure::config::Config;
use tenure::duration::Secs;
use tenure::logout::DeliveryKind;
use tenure::oauth::client_auth::ClientRegistry;
use tenure::policy::{PolicyHistory, SessionPolicy};
use tenure::service::revocation::Revocation;
use tenure::session::code::AuthCode;
use tenure::session::family::{Activity, Family, RefreshDecision, decide_refresh};
use tenure::session::user_session::UserSession;
use tenure::ssf::{SetSubject, Stream};
use tenure::store::{Redemption, Revoke, SledStore, Store};

const CHILD_ENV: &str = "TENURE_CRASH_CHILD";
const CHILD_TEST: &str = "crash::crash_child";
const T0: UnixTime = UnixTime(1_700_000_000);
const FAR: UnixTime = UnixTime(T0.0 + 100 * 365 * 86_400);
const ALL: usize = 1_000_000;
const ROUNDS: u64 = 5;

/// `web` gets back-channel logouts; `rs` receives the revocation feed.
fn clients() -> ClientRegistry {
    let text = r#"
[[clients]]
id = "web"
secret = "web-secret"
redirect_uris = ["http://127.0.0.1:9000/cb"]
grant_types = ["authorization_code", "refresh_token"]
scopes = ["openid"]
backchannel_logout_uri = "http://127.0.0.1:9/backchannel"

[[clients]]
id = "rs"
secret = "rs-secret"
grant_types = ["client_credentials"]
scopes = ["ssf.read"]
"#;
    let config = Config::from_toml(text, &Default::default()).expect("config");
    ClientRegistry::new(config.clients).expect("registry")
}

/// The child: runs only when `TENURE_CRASH_CHILD` names a store directory,
/// and never returns then (it is killed).
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else { return };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(child(PathBuf::from(dir)));
}

async fn child(dir: PathBuf) {
    let store = SledStore::open(&dir).expect("open the store");
    let clients = clients();
    if store.ssf_stream("rs").await.expect("read").is_none() {
        let body = serde_json::json!({ "delivery": { "method": tenure::ssf::POLL },
            "events_requested": [tenure::ssf::SESSION_REVOKED] });
        let stream = Stream::create("rs", body.as_object().expect("object"), "http://iss", T0).expect("stream");
        store.put_ssf_stream(&stream).await.expect("stream");
    }
    let mut history =
        store.policy_history().await.expect("read").unwrap_or_else(|| PolicyHistory::new(T0, SessionPolicy::default()));
    let revocation = Revocation { store: &store, clients: &clients, now: T0 };
    let keep = T0.plus(Secs::days(30));
    // Carry on the cycle of transitions where the last run was killed.
    let start = store.all_sessions().await.expect("sessions").len() as u64;
    // On a line of its own: libtest's "test crash::crash_child ... " has none.
    println!("\nready");
    for i in start.. {
        let (session, _) = UserSession::start("alice", false, None, None, T0).expect("rng");
        store.put_session(&session, keep).await.expect("session");
        let sid = session.sid.clone();
        let fid = tenure::session::new_id();
        let code = AuthCode {
            client_id: "web".into(),
            redirect_uri: "http://127.0.0.1:9000/cb".into(),
            redirect_uri_given: true,
            scope: "openid".into(),
            nonce: None,
            code_challenge: None,
            sid: sid.clone(),
            username: "alice".into(),
            auth_time: T0,
            remember_me: false,
            issued_at: T0,
            redeemed_family: None,
            dpop_jkt: None,
        };
        let family = Family {
            id: fid.clone(),
            salt: "salt".into(),
            sid: sid.clone(),
            username: "alice".into(),
            client_id: "web".into(),
            scope: "openid".into(),
            auth_time: T0,
            remember_me: false,
            created_at: T0,
            generation: 1,
            rotated_at: T0,
            active_at: None,
            issues_refresh_tokens: true,
            revoked: None,
            jkt: None,
        };
        store.put_code(sid.as_bytes(), &code).await.expect("code");
        let fallout = revocation.fallout("system");
        let redeemed = store.redeem_code(sid.as_bytes(), &family, keep, T0, &fallout).await.expect("redeem");
        assert_eq!(redeemed, Redemption::Redeemed { superseded: vec![] });
        println!("done family {fid} {sid}");
        match i % 4 {
            0 => {
                let outcome = revocation.family(&fid, "root", "admin_revoked").await.expect("revoke");
                assert!(matches!(outcome, Revoke::Revoked(_)));
                println!("done revoke_family {fid}");
            }
            1 => {
                let outcome = revocation.session(&sid, "root", "admin_revoked").await.expect("revoke");
                assert!(matches!(outcome, Revoke::Revoked(_)));
                println!("done revoke_session {sid}");
            }
            2 => {
                let fallout = revocation.fallout("system");
                let present = |generation: u64| {
                    move |f: &Family, _: Option<&UserSession>| {
                        decide_refresh(f, generation, T0, Secs::ZERO, None, Activity::Interactive)
                    }
                };
                let rotated = store.refresh(&fid, present(1), &fallout).await.expect("refresh");
                assert!(matches!(rotated, Some(RefreshDecision::Rotate(_))));
                println!("done rotate {fid}");
                let reused = store.refresh(&fid, present(1), &fallout).await.expect("refresh");
                assert!(matches!(reused, Some(RefreshDecision::Reuse(_))));
                println!("done reuse {fid}");
            }
            _ => {
                let k = history.entries().len() as u64;
                let mut entries = history.entries().to_vec();
                entries.push((T0.plus(Secs::new(k)), SessionPolicy::default()));
                history = PolicyHistory::from_entries(entries).expect("not empty");
                let event = AuditEvent::new(T0.plus(Secs::new(k)), EventKind::SettingsChanged, "root", "settings")
                    .details(serde_json::json!({ "entry": k }));
                store.set_policy(None, &history, Some(&event)).await.expect("settings");
                println!("done settings {k}");
            }
        }
    }
}

/// One round: start the child on `dir`, SIGKILL it `after` it has opened
/// the store, and return the transitions it reported as done.
fn run_child(dir: &Path, after: Duration) -> Vec<String> {
    let exe = std::env::current_exe().expect("the test binary");
    let mut child = Command::new(exe)
        .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the child");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut done = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line == "ready" {
                let _ = tx.send(());
            } else if let Some(d) = line.strip_prefix("done ") {
                done.push(d.to_owned());
            }
        }
        done
    });
    let ready = rx.recv_timeout(Duration::from_secs(10));
    if ready.is_ok() {
        // sleep: the kill lands at a chosen moment of the child's run
        std::thread::sleep(after);
    }
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("wait");
    assert!(ready.is_ok(), "the child never opened the store");
    assert!(!status.success(), "the child is killed, it never finishes: {status:?}");
    reader.join().expect("reader")
}

#[test]
fn every_transition_leaves_all_its_effects_or_none_after_a_sigkill() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let store_dir = dir.path().join("store");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let random = RandomState::new();
    let mut reported = Vec::new();
    for round in 0..ROUNDS {
        let after = Duration::from_millis(50 + random.hash_one(round) % 351);
        let lines = run_child(&store_dir, after);
        reported.extend(lines);
        rt.block_on(async {
            let store = SledStore::open(&store_dir).expect("reopen after the kill");
            check(&store, &reported).await;
            store.close();
        });
    }
    let kinds: BTreeSet<&str> = reported.iter().filter_map(|l| l.split(' ').next()).collect();
    for kind in ["revoke_family", "revoke_session", "reuse", "settings"] {
        assert!(kinds.contains(kind), "the child got as far as a {kind} ({} lines)", reported.len());
    }
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
}

/// The invariants after a crash, through the `Store` trait.
async fn check(store: &SledStore, reported: &[String]) {
    let events: Vec<AuditEvent> =
        store.events_page(None, ALL).await.expect("events").into_iter().map(|(_, e)| e).collect();
    let deliveries = store.due_deliveries(FAR, ALL).await.expect("outbox");
    let sets = store.queued_sets("rs", ALL).await.expect("feed");
    let families: BTreeMap<String, Family> =
        store.client_families("web").await.expect("families").into_iter().map(|f| (f.id.clone(), f)).collect();
    let sessions: BTreeMap<String, UserSession> =
        store.all_sessions().await.expect("sessions").into_iter().map(|s| (s.sid.clone(), s)).collect();
    let history = store.policy_history().await.expect("history");

    let events_for = |target: &str| events.iter().filter(|e| e.target == target).collect::<Vec<_>>();
    let logouts_for = |sid: &str| {
        deliveries
            .iter()
            .filter(|(_, d)| matches!(&d.kind, DeliveryKind::Logout { client_id, sid: s, .. } if client_id == "web" && s == sid))
            .count()
    };
    let sets_for = |sid: &str, client: Option<&str>| {
        sets.iter()
            .filter(|(_, s)| {
                matches!(&s.subject, SetSubject::Session { sid: s, client_id, .. } if s == sid && client_id.as_deref() == client)
            })
            .count()
    };

    // Every revoked family has its one event, one logout and one feed event;
    // a live family has none.
    for f in families.values() {
        let target = format!("family:{}", f.id);
        let found = events_for(&target);
        match f.revoked.as_ref().map(|r| r.reason.as_str()) {
            Some(reason @ ("refresh_token_reuse" | "admin_revoked")) => {
                let kind = if reason == "refresh_token_reuse" {
                    EventKind::RefreshTokenReuse
                } else {
                    EventKind::FamilyRevoked
                };
                assert_eq!(found.len(), 1, "{target} revoked ({reason}): one event, found {found:?}");
                assert_eq!((found[0].kind, found[0].reason.as_deref()), (kind, Some(reason)), "{target}");
                assert_eq!(logouts_for(&f.sid), 1, "{target}: one back-channel logout");
                assert_eq!(sets_for(&f.sid, Some("web")), 1, "{target}: one feed event");
            }
            Some(other) => panic!("{target}: revoked for an unexpected reason {other}"),
            None => assert!(found.is_empty(), "{target} is alive but has {found:?}"),
        }
    }
    // Every revoked session likewise.
    for s in sessions.values() {
        let target = format!("session:{}", s.sid);
        let found = events_for(&target);
        let family_killed = families.values().any(|f| f.sid == s.sid && f.revoked.is_some());
        if let Some(r) = &s.revoked {
            assert_eq!(r.reason, "admin_revoked", "{target}");
            assert_eq!(found.len(), 1, "{target} revoked: one event, found {found:?}");
            assert_eq!(found[0].kind, EventKind::SessionRevoked);
            assert!(!family_killed, "{target}: one transition per session");
            assert_eq!(logouts_for(&s.sid), 1, "{target}: one back-channel logout");
            assert_eq!(sets_for(&s.sid, None), 1, "{target}: one feed event");
        } else {
            assert!(found.is_empty(), "{target} is alive but has {found:?}");
            if !family_killed {
                assert_eq!(logouts_for(&s.sid), 0, "{target}: a logout without a revocation");
            }
        }
    }
    // No effect without its state.
    for (_, d) in &deliveries {
        let DeliveryKind::Logout { sid, .. } = &d.kind else { panic!("unexpected delivery {d:?}") };
        let session_revoked = sessions.get(sid).is_some_and(|s| s.revoked.is_some());
        let family_revoked = families.values().any(|f| &f.sid == sid && f.revoked.is_some());
        assert!(session_revoked || family_revoked, "a logout for {sid}, which nothing revoked");
    }
    for (_, s) in &sets {
        let SetSubject::Session { sid, .. } = &s.subject else { panic!("unexpected feed event {s:?}") };
        let session_revoked = sessions.get(sid).is_some_and(|s| s.revoked.is_some());
        let family_revoked = families.values().any(|f| &f.sid == sid && f.revoked.is_some());
        assert!(session_revoked || family_revoked, "a feed event for {sid}, which nothing revoked");
    }
    let mut settings = Vec::new();
    for e in &events {
        match e.kind {
            EventKind::FamilyRevoked | EventKind::RefreshTokenReuse => {
                let id = e.target.strip_prefix("family:").expect("a family target");
                let f = families.get(id).unwrap_or_else(|| panic!("{e:?}: no such family"));
                assert_eq!(f.revoked.as_ref().map(|r| r.reason.as_str()), e.reason.as_deref(), "{e:?}");
            }
            EventKind::SessionRevoked => {
                let sid = e.target.strip_prefix("session:").expect("a session target");
                assert!(sessions.get(sid).is_some_and(|s| s.revoked.is_some()), "{e:?}: its session is not revoked");
            }
            EventKind::SettingsChanged => settings.push(e.details["entry"].as_u64().expect("entry")),
            other => panic!("unexpected event {other}"),
        }
    }
    // Every settings event has its history entry, and every entry its event.
    settings.sort_unstable();
    let entries = history.as_ref().map_or(0, |h| h.entries().len() as u64);
    assert_eq!(settings, (1..entries).collect::<Vec<_>>(), "settings events against {entries} history entries");
    if let Some(h) = &history {
        for (k, (at, _)) in h.entries().iter().enumerate() {
            assert_eq!(*at, T0.plus(Secs::new(k as u64)), "history entry {k}");
        }
    }

    // Every transition reported done is there.
    for line in reported {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["family", fid, sid] => {
                assert!(families.contains_key(*fid) && sessions.contains_key(*sid), "lost: {line}")
            }
            ["revoke_family", fid] => {
                assert_eq!(families[*fid].revoked.as_ref().map(|r| r.reason.as_str()), Some("admin_revoked"), "{line}")
            }
            ["revoke_session", sid] => assert!(sessions[*sid].revoked.is_some(), "lost: {line}"),
            ["rotate", fid] => assert!(families[*fid].generation >= 2, "lost: {line}"),
            ["reuse", fid] => {
                let reason = families[*fid].revoked.as_ref().map(|r| r.reason.as_str());
                assert_eq!(reason, Some("refresh_token_reuse"), "{line}")
            }
            ["settings", k] => assert!(k.parse::<u64>().expect("entry") < entries, "lost: {line}"),
            _ => panic!("unexpected line {line}"),
        }
    }
}
