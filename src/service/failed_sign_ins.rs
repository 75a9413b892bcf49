//! Failed sign-ins in the audit log (SPEC 4): one `sign_in_failed` record
//! per (username, address) and hour, counted up in place through the store,
//! so a flood of failures cannot grow it.

use std::collections::HashMap;

use crate::audit::{AuditEvent, EventKind};
use crate::clock::UnixTime;
use crate::duration::Secs;
use crate::store::Store;

/// How long one failed-sign-in record collects attempts.
pub const FAILURE_RECORD_WINDOW: Secs = Secs::hours(1);
/// Records the aggregator keeps open at once; beyond, the oldest is closed.
const OPEN_RECORDS: usize = 10_000;

/// Failed sign-ins are aggregated: one `sign_in_failed` record per
/// (username, address) and [`FAILURE_RECORD_WINDOW`], updated in place with
/// the number of attempts, so a flood of failures cannot grow the store.
/// Attempts refused by the per-address limit, where the username is never
/// looked at, go to one `sign_in_throttled` record per address and window.
#[derive(Debug, Default)]
pub struct FailureAggregator {
    open: tokio::sync::Mutex<HashMap<[u8; 32], OpenRecord>>,
}

#[derive(Debug)]
struct OpenRecord {
    id: u64,
    event: AuditEvent,
}

/// What one failed attempt was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailedAttempt {
    /// The password was checked and was wrong (or the user is unknown).
    WrongPassword,
    /// Refused by a throttle before any check.
    Throttled,
}

impl FailureAggregator {
    /// Count one failed sign-in of `username` (`None`: refused for its
    /// address alone) from `ip` at `now`: a new record for a new pair or
    /// window (durable on return), else the open record counted up (flushed
    /// with the next write).
    pub async fn record<S: Store>(
        &self,
        store: &S,
        username: Option<&str>,
        ip: &str,
        attempt: FailedAttempt,
        now: UnixTime,
    ) -> crate::store::Result<()> {
        let key = crate::oauth::throttle::ThrottleKey::of(&[username.unwrap_or("\0address"), ip]);
        let key = key.as_bytes();
        let mut open = self.open.lock().await;
        if let Some(record) = open.get_mut(&key) {
            if now < record.event.at.plus(FAILURE_RECORD_WINDOW) {
                count(&mut record.event, attempt, now);
                if store.replace_event(record.id, &record.event).await? {
                    return Ok(());
                }
            }
            open.remove(&key);
        }
        if open.len() >= OPEN_RECORDS {
            let window_start = UnixTime(now.as_secs().saturating_sub(FAILURE_RECORD_WINDOW.as_secs()));
            open.retain(|_, r| r.event.at > window_start);
            if open.len() >= OPEN_RECORDS {
                if let Some(oldest) = open.iter().min_by_key(|(_, r)| r.id).map(|(k, _)| *k) {
                    open.remove(&oldest);
                }
            }
        }
        let mut event = match username {
            Some(name) => AuditEvent::new(now, EventKind::SignInFailed, name, format!("user:{name}"))
                .reason("wrong username or password, or too many failures"),
            None => AuditEvent::new(now, EventKind::SignInThrottled, "anonymous", format!("address:{ip}"))
                .reason("too many failed sign-ins from this address"),
        }
        .details(serde_json::json!({ "ip": ip, "count": 0, "wrong_password": 0, "throttled": 0, "last_at": now }));
        count(&mut event, attempt, now);
        let id = store.append_event(&event).await?;
        event.log();
        open.insert(key, OpenRecord { id, event });
        Ok(())
    }
}

fn count(event: &mut AuditEvent, attempt: FailedAttempt, now: UnixTime) {
    let bump = |details: &mut serde_json::Value, field: &str| {
        let n = details.get(field).and_then(serde_json::Value::as_u64).unwrap_or(0);
        details[field] = serde_json::json!(n.saturating_add(1));
    };
    bump(&mut event.details, "count");
    match attempt {
        FailedAttempt::WrongPassword => bump(&mut event.details, "wrong_password"),
        FailedAttempt::Throttled => bump(&mut event.details, "throttled"),
    }
    event.details["last_at"] = serde_json::json!(now);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;

    const T0: UnixTime = UnixTime(1_700_000_000);

    #[tokio::test]
    async fn failed_sign_ins_are_counted_in_one_record_per_user_address_and_hour() {
        let store = SledStore::temporary().expect("store");
        let failures = FailureAggregator::default();
        for i in 0..100 {
            let attempt = if i < 5 { FailedAttempt::WrongPassword } else { FailedAttempt::Throttled };
            failures.record(&store, Some("alice"), "10.0.0.1", attempt, T0.plus(Secs::new(i))).await.expect("record");
        }
        failures.record(&store, Some("alice"), "10.0.0.2", FailedAttempt::WrongPassword, T0).await.expect("record");
        failures.record(&store, None, "10.0.0.3", FailedAttempt::Throttled, T0).await.expect("record");
        let later = T0.plus(FAILURE_RECORD_WINDOW);
        failures.record(&store, Some("alice"), "10.0.0.1", FailedAttempt::WrongPassword, later).await.expect("record");
        let page = store.events_page(None, 1000).await.expect("page");
        assert_eq!(page.len(), 4, "{page:#?}");
        let first = &page[3].1;
        assert_eq!((first.kind.as_str(), first.actor.as_str(), first.at), ("sign_in_failed", "alice", T0));
        assert_eq!(first.details["ip"], "10.0.0.1");
        assert_eq!(first.details["count"], 100);
        assert_eq!(first.details["wrong_password"], 5);
        assert_eq!(first.details["throttled"], 95);
        assert_eq!(first.details["last_at"], serde_json::json!(T0.plus(Secs::new(99))));
        assert_eq!(page[1].1.kind, "sign_in_throttled");
        assert_eq!(page[1].1.target, "address:10.0.0.3");
        assert_eq!(page[0].1.details["count"], 1, "a new hour, a new record");
    }
}
