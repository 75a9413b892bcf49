//! The event log (SPEC 4): sign-ins and their failures, revocations (actor,
//! target, reason), reuse detections, settings changes (old -> new). Each
//! event has a typed [`EventKind`] and, once stored, a sequence number that
//! only grows. A transition writes its events in the same atomic step as
//! its state (see `store::Effects`); the audit log (`GET /admin/audit`,
//! newest first) is a view of this log, and every event is written to the
//! process log as well.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::duration::Secs;
use crate::store::Store;

/// What happened. Serialised (store, API, logs) as its snake_case name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    SignIn,
    SignInFailed,
    SignInThrottled,
    SessionRevoked,
    UserSessionsRevoked,
    FamilyRevoked,
    RefreshTokenReuse,
    AuthorizationCodeReplay,
    TokenExchangeRefused,
    SettingsChanged,
    SettingsReset,
    UserCreated,
    UserUpdated,
    UserDisabled,
    UserDeleted,
    ClientCreated,
    ClientUpdated,
    ClientDeleted,
    ClientSecretRotated,
    KeyRotated,
}

impl EventKind {
    pub const ALL: [EventKind; 20] = [
        EventKind::SignIn,
        EventKind::SignInFailed,
        EventKind::SignInThrottled,
        EventKind::SessionRevoked,
        EventKind::UserSessionsRevoked,
        EventKind::FamilyRevoked,
        EventKind::RefreshTokenReuse,
        EventKind::AuthorizationCodeReplay,
        EventKind::TokenExchangeRefused,
        EventKind::SettingsChanged,
        EventKind::SettingsReset,
        EventKind::UserCreated,
        EventKind::UserUpdated,
        EventKind::UserDisabled,
        EventKind::UserDeleted,
        EventKind::ClientCreated,
        EventKind::ClientUpdated,
        EventKind::ClientDeleted,
        EventKind::ClientSecretRotated,
        EventKind::KeyRotated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::SignIn => "sign_in",
            EventKind::SignInFailed => "sign_in_failed",
            EventKind::SignInThrottled => "sign_in_throttled",
            EventKind::SessionRevoked => "session_revoked",
            EventKind::UserSessionsRevoked => "user_sessions_revoked",
            EventKind::FamilyRevoked => "family_revoked",
            EventKind::RefreshTokenReuse => "refresh_token_reuse",
            EventKind::AuthorizationCodeReplay => "authorization_code_replay",
            EventKind::TokenExchangeRefused => "token_exchange_refused",
            EventKind::SettingsChanged => "settings_changed",
            EventKind::SettingsReset => "settings_reset",
            EventKind::UserCreated => "user_created",
            EventKind::UserUpdated => "user_updated",
            EventKind::UserDisabled => "user_disabled",
            EventKind::UserDeleted => "user_deleted",
            EventKind::ClientCreated => "client_created",
            EventKind::ClientUpdated => "client_updated",
            EventKind::ClientDeleted => "client_deleted",
            EventKind::ClientSecretRotated => "client_secret_rotated",
            EventKind::KeyRotated => "key_rotated",
        }
    }

    /// The kind named `name`, `None` when there is none.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for EventKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub at: UnixTime,
    pub kind: EventKind,
    /// Who did it: a username, `client:<id>`, or `system`.
    pub actor: String,
    /// What it was done to: `user:<name>`, `session:<sid>`, `family:<id>`, `settings`.
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
}

impl AuditEvent {
    pub fn new(at: UnixTime, kind: EventKind, actor: impl Into<String>, target: impl Into<String>) -> Self {
        AuditEvent {
            at,
            kind,
            actor: actor.into(),
            target: target.into(),
            reason: None,
            details: serde_json::Value::Null,
        }
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }

    /// Write the event to the log (never a token or secret: events hold
    /// none). Fields may carry what a user typed (a username): control
    /// characters are escaped, so no field can start a line of its own.
    pub fn log(&self) {
        tracing::info!(
            audit = self.kind.as_str(),
            actor = %escape_control(&self.actor),
            target = %escape_control(&self.target),
            reason = %escape_control(self.reason.as_deref().unwrap_or("")),
            "audit event"
        );
    }
}

/// `s` with control characters (and the Unicode line and paragraph
/// separators) written as escapes: `\n`, `\r`, `\t`, `\u{1b}`. Use it on every
/// logged field that carries user input.
pub fn escape_control(s: &str) -> Cow<'_, str> {
    let needs = |c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}';
    if !s.chars().any(needs) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

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
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::store::SledStore;

    const T0: UnixTime = UnixTime(1_700_000_000);

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_control("alice"), "alice");
        assert!(matches!(escape_control("alice"), Cow::Borrowed(_)));
        assert_eq!(escape_control("eve\nforged"), "eve\\nforged");
        assert_eq!(escape_control("a\r\tb\u{1b}[31m\u{2028}"), "a\\r\\tb\\u{1b}[31m\\u{2028}");
    }

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_newline_in_a_username_cannot_forge_an_audit_line() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber =
            tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).with_target(false).finish();
        let forged = "eve\n2026-01-01T00:00:00Z  INFO audit event audit=sign_in actor=root target=session:x";
        tracing::subscriber::with_default(subscriber, || {
            AuditEvent::new(T0, EventKind::SignInFailed, forged, format!("user:{forged}"))
                .reason("bad\r\npassword")
                .log();
        });
        let text = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
        assert_eq!(text.lines().count(), 1, "one event, one line: {text}");
        assert!(text.contains(r"actor=eve\n2026-01-01T00:00:00Z"), "{text}");
        assert!(text.contains(r"reason=bad\r\npassword"), "{text}");
    }

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
