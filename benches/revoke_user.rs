//! The cost of revoking every session of a user, durable (SPEC issue
//! "revocation cost independent of how many tokens descend").
//!
//! For users holding 10, 1,000 and 10,000 sessions in an on-disk sled store,
//! time `Revocation::user` — the user's marker, the back-channel fan-out
//! entry and the audit event, written in one durable store step — and
//! check that the sessions then read as revoked. Prints the median and p90 of
//! 25 runs per size.
//!
//! Run: `cargo bench --bench revoke_user`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use tenure::clock::UnixTime;
use tenure::config::Config;
use tenure::oauth::client_auth::ClientRegistry;
use tenure::service::revocation::Revocation;
use tenure::session::user_session::UserSession;
use tenure::store::{SledStore, Store};

const RUNS: usize = 25;
const T0: UnixTime = UnixTime(1_700_000_000);

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let config = Config::from_toml("", &Default::default()).unwrap();
        let clients = ClientRegistry::new(config.clients).unwrap();
        println!("sessions  median_ms  p90_ms  (Revocation::user, durable; {RUNS} runs each)");
        for sessions in [10usize, 1_000, 10_000] {
            let dir = tempfile::tempdir().unwrap();
            let store = SledStore::open(dir.path()).unwrap();
            // Seed the user's sessions (not measured): concurrent writes share flushes.
            let user = "alice";
            let mut seeding = tokio::task::JoinSet::new();
            let mut sids = Vec::with_capacity(sessions);
            for _ in 0..sessions {
                let (s, _) = UserSession::start(user, false, None, None, T0).unwrap();
                sids.push(s.sid.clone());
                let store = store.clone();
                seeding.spawn(async move { store.put_session(&s, T0.plus(tenure::duration::Secs::days(30))).await });
            }
            while let Some(done) = seeding.join_next().await {
                done.unwrap().unwrap();
            }
            assert_eq!(store.user_sessions(user).await.unwrap().len(), sessions);
            let revocation = Revocation { store: &store, clients: &clients, now: T0 };
            let mut times = Vec::with_capacity(RUNS);
            for _ in 0..RUNS {
                let started = Instant::now();
                revocation.user(user, "bench", "admin_revoked").await.unwrap();
                times.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            // Every session of the user reads as revoked.
            for sid in &sids {
                assert!(store.session(sid).await.unwrap().unwrap().revoked.is_some());
            }
            times.sort_by(f64::total_cmp);
            println!("{sessions:>8}  {:>9.3}  {:>6.3}", times[RUNS / 2], times[RUNS * 9 / 10]);
            store.close();
        }
    });
}
