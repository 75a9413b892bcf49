//! The revocation feed's push with two replicas (SPEC 12: "Each SSF push
//! ... is sent by one replica under a lease"): both replicas run the push
//! worker on one queue; each event reaches the receiver exactly once, and
//! when the replica holding a stream's lease dies, the other takes the
//! stream over once the lease runs out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::ssf::{config, push_stream, sid_of, sign_in, verify_set};
use crate::support::kit::cc_token;
use crate::support::postgres::{self, PgDatabase};
use crate::support::{Server, eventually};

const ISSUER: &str = "http://tenure.feed-replicas.test";
/// `worker::ssf_push::PUSH_LEASE`.
const PUSH_LEASE: Duration = Duration::from_secs(15);

/// A push receiver that takes [`SLOW`] to answer each POST (202), as a
/// distant one does: long enough for both replicas' workers to tick while a
/// push is under way, so a SET sent by both would show.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<String>>>,
}

const SLOW: Duration = Duration::from_millis(1200);

impl Receiver {
    async fn start() -> (Receiver, String) {
        let receiver = Receiver::default();
        let r = receiver.clone();
        let handler = move |body: String| {
            let r = r.clone();
            async move {
                r.got.lock().unwrap().push(body);
                // sleep: a slow receiver is the condition under test
                tokio::time::sleep(SLOW).await;
                axum::http::StatusCode::ACCEPTED
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/events", listener.local_addr().unwrap());
        let app = axum::Router::new().route("/events", axum::routing::post(handler));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (receiver, url)
    }

    fn got(&self) -> Vec<String> {
        self.got.lock().unwrap().clone()
    }
}

async fn replicas() -> Option<(PgDatabase, Server, Server)> {
    let db = postgres::database().await?;
    crate::support::postgres::migrate(&db.url);
    let env = [("TENURE_STORE", "postgres"), ("TENURE_DATABASE_URL", db.url.as_str()), ("TENURE_ISSUER", ISSUER)];
    let a = Server::start(&config(), &env);
    let keys = a.keys_dir().display().to_string();
    let b = Server::start(&config(), &[env[0], env[1], env[2], ("TENURE_KEYS_DIR", keys.as_str())]);
    Some((db, a, b))
}

/// Sign alice in at `server` and revoke that session there: one queued SET.
async fn one_event(server: &Server) -> String {
    let admin = cc_token(server, "ops", "ops-secret").await;
    let sid = sid_of(&sign_in(server).await);
    let (status, _) =
        crate::support::kit::call(server, "DELETE", &format!("/admin/sessions/{sid}"), Some(&admin), None).await;
    assert_eq!(status, 204);
    sid
}

/// How many times each event (`jti`) was received, and each received
/// event's session id.
async fn delivered(receiver: &Receiver, server: &Server) -> (HashMap<String, usize>, Vec<String>) {
    let jwks = server.jwks().await;
    let mut times = HashMap::new();
    let mut sids = Vec::new();
    for body in receiver.got() {
        let set = verify_set(&body, &jwks, ISSUER, "rs");
        *times.entry(set["jti"].as_str().expect("jti").to_owned()).or_default() += 1;
        sids.push(set["sub_id"]["session"]["id"].as_str().expect("sid").to_owned());
    }
    (times, sids)
}

#[tokio::test]
async fn each_feed_event_is_pushed_once_by_one_replica_and_survives_its_death() {
    let Some((db, a, b)) = replicas().await else { return };
    let (receiver, url) = Receiver::start().await;
    let rs = cc_token(&a, "rs", "rs-secret").await;
    push_stream(&a, &rs, &url).await;

    // Events made at both replicas, pushed by whichever holds the lease.
    let mut sids = Vec::new();
    for i in 0..6 {
        sids.push(one_event(if i % 2 == 0 { &a } else { &b }).await);
    }
    assert!(
        eventually(Duration::from_secs(30), || async { receiver.got().len() >= sids.len() }).await,
        "every event pushed: {} of {}",
        receiver.got().len(),
        sids.len()
    );
    // sleep: an absence (no second push of any event) cannot be polled for
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (times, pushed) = delivered(&receiver, &a).await;
    assert_eq!(receiver.got().len(), sids.len(), "one POST per event, never two");
    assert!(times.values().all(|n| *n == 1), "each event pushed exactly once: {times:?}");
    let mut expected = sids.clone();
    expected.sort();
    let mut got = pushed.clone();
    got.sort();
    assert_eq!(got, expected, "every revoked session's event, once");

    // The lease holder dies; the survivor takes the stream over when the
    // lease runs out, and pushes what was queued meanwhile, once.
    let owner: String = db
        .client()
        .await
        .query_one("SELECT owner FROM leases WHERE name = 'ssf-push:rs'", &[])
        .await
        .expect("the stream's push lease")
        .get(0);
    let a_holds = owner.contains(&format!("-{}-", a.pid()));
    assert!(a_holds || owner.contains(&format!("-{}-", b.pid())), "the lease is A's or B's: {owner}");
    let (holder, survivor) = if a_holds { (a, b) } else { (b, a) };
    drop(holder.kill_keep_dir());
    let before = receiver.got().len();
    let late = one_event(&survivor).await;
    assert!(
        eventually(PUSH_LEASE + Duration::from_secs(10), || async { receiver.got().len() > before }).await,
        "the survivor pushes once the dead replica's lease ran out"
    );
    // sleep: an absence (no second push) cannot be polled for
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (times, pushed) = delivered(&receiver, &survivor).await;
    assert_eq!(receiver.got().len(), before + 1, "the late event, once");
    assert!(times.values().all(|n| *n == 1), "{times:?}");
    assert_eq!(pushed.last(), Some(&late));
}
