//! The event log (SPEC 4): sign-ins and their failures, revocations (actor,
//! target, reason), reuse detections, settings changes (old -> new). Each
//! event has a typed [`EventKind`] and, once stored, a sequence number that
//! only grows. A transition writes its events in the same atomic step as
//! its state (see `store::Effects`); the audit log (`GET /admin/audit`,
//! newest first) is a view of this log, and every event is written to the
//! process log as well.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::session::end::EndReason;

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
    /// SPEC 15: a person approved a device authorization request at `/device`.
    DeviceApproved,
    /// SPEC 15: a person denied one.
    DeviceDenied,
}

impl EventKind {
    pub const ALL: [EventKind; 22] = [
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
        EventKind::DeviceApproved,
        EventKind::DeviceDenied,
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
            EventKind::DeviceApproved => "device_approved",
            EventKind::DeviceDenied => "device_denied",
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
    /// SPEC 14: for an event that ends sessions, why, as the SPEC code
    /// (`reason` keeps the stored words).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<EndReason>,
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
            end_reason: None,
            details: serde_json::Value::Null,
        }
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// An event that ends sessions for the stored revocation `reason`: the
    /// reason as it is, and its SPEC 14 code in `end_reason`.
    pub fn ending(mut self, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        self.end_reason = Some(EndReason::of_revocation(&reason));
        self.reason = Some(reason);
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
            end_reason = self.end_reason.map_or("", EndReason::as_str),
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

/// The log lines an audit event writes, captured (for unit tests here and
/// in the use cases that log events).
#[cfg(test)]
#[derive(Clone, Default)]
pub struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl Captured {
    /// What was written so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("lock").clone()).expect("utf-8")
    }
}

#[cfg(test)]
impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A plain-text subscriber writing into the returned [`Captured`]; use it
/// with `tracing::subscriber::with_default`.
#[cfg(test)]
pub fn captured_log() -> (Captured, impl tracing::Subscriber) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber =
        tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).with_target(false).finish();
    (captured, subscriber)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: UnixTime = UnixTime(1_700_000_000);

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_control("alice"), "alice");
        assert!(matches!(escape_control("alice"), Cow::Borrowed(_)));
        assert_eq!(escape_control("eve\nforged"), "eve\\nforged");
        assert_eq!(escape_control("a\r\tb\u{1b}[31m\u{2028}"), "a\\r\\tb\\u{1b}[31m\\u{2028}");
    }

    #[test]
    fn a_newline_in_a_username_cannot_forge_an_audit_line() {
        let (captured, subscriber) = captured_log();
        let forged = "eve\n2026-01-01T00:00:00Z  INFO audit event audit=sign_in actor=root target=session:x";
        tracing::subscriber::with_default(subscriber, || {
            AuditEvent::new(T0, EventKind::SignInFailed, forged, format!("user:{forged}"))
                .reason("bad\r\npassword")
                .log();
        });
        let text = captured.text();
        assert_eq!(text.lines().count(), 1, "one event, one line: {text}");
        assert!(text.contains(r"actor=eve\n2026-01-01T00:00:00Z"), "{text}");
        assert!(text.contains(r"reason=bad\r\npassword"), "{text}");
    }
}
