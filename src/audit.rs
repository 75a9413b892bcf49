//! The audit log (SPEC 4): sign-ins and their failures, revocations (actor,
//! target, reason), reuse detections, settings changes (old -> new). Events
//! are kept in the store, newest first through `GET /admin/audit`, and
//! written to the log as well.

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub at: UnixTime,
    /// `sign_in`, `sign_in_failed`, `session_revoked`, `user_sessions_revoked`,
    /// `family_revoked`, `refresh_token_reuse`, `authorization_code_replay`,
    /// `logout`, `settings_changed`, `settings_reset`, ...
    pub kind: String,
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
    pub fn new(at: UnixTime, kind: &str, actor: impl Into<String>, target: impl Into<String>) -> Self {
        AuditEvent {
            at,
            kind: kind.to_owned(),
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

    /// Write the event to the log (never a token or secret: events hold none).
    pub fn log(&self) {
        tracing::info!(
            audit = %self.kind,
            actor = %self.actor,
            target = %self.target,
            reason = self.reason.as_deref().unwrap_or(""),
            "audit event"
        );
    }
}
