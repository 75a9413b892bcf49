//! Why a session ended (SPEC 14): the reasons a refused refresh names in
//! `session_end_reason`, the account and admin session listings show, and
//! the audit events of an ending carry.
//!
//! A revocation stores its own reason string in [`Revoked`] (the words the
//! audit log and the revocation feed have always used);
//! [`EndReason::of_revocation`] maps it to the reason of SPEC 14. A timeout
//! is never stored: it is computed from the record and the policies in force
//! ([`crate::policy::PolicyHistory::death`]), and its moment is the deadline
//! that passed, not the moment someone noticed.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Revoked;
use crate::clock::UnixTime;
use crate::duration::Secs;

/// How long ended sessions stay listed (and their records kept): SPEC 14.
pub const ENDED_LISTED: Secs = Secs::days(30);

/// SPEC 14: why a session (or a family of it) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// No activity for the idle timeout.
    IdleTimeout,
    /// The maximum lifetime from sign-in (or the client's own) passed.
    MaxLifetime,
    /// The user signed out (RP-initiated logout, the console, "sign out
    /// everywhere", a session ended from their own account).
    SignedOut,
    /// An administrator, a client (RFC 7009) or the system revoked it.
    Revoked,
    /// A spent refresh token or a redeemed code was presented again.
    ReuseDetected,
    /// The user was disabled.
    UserDisabled,
    /// The user's password was set or changed.
    CredentialsChanged,
    /// A newer sign-in went over the user's session limit.
    SessionLimit,
    /// The client was deleted.
    ClientDeleted,
}

impl EndReason {
    /// The SPEC 14 code.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::IdleTimeout => "idle_timeout",
            EndReason::MaxLifetime => "max_lifetime",
            EndReason::SignedOut => "signed_out",
            EndReason::Revoked => "revoked",
            EndReason::ReuseDetected => "reuse_detected",
            EndReason::UserDisabled => "user_disabled",
            EndReason::CredentialsChanged => "credentials_changed",
            EndReason::SessionLimit => "session_limit",
            EndReason::ClientDeleted => "client_deleted",
        }
    }

    /// The reason of a stored revocation (`Revoked.reason`).
    pub fn of_revocation(stored: &str) -> EndReason {
        match stored {
            "logout"
            | "console_signed_out"
            | "user_signed_out_everywhere"
            | "user_revoked"
            | "replaced_by_new_sign_in" => EndReason::SignedOut,
            "refresh_token_reuse" | "authorization_code_replay" => EndReason::ReuseDetected,
            "user_disabled" => EndReason::UserDisabled,
            "credentials_changed" => EndReason::CredentialsChanged,
            "session_limit" => EndReason::SessionLimit,
            "client_deleted" => EndReason::ClientDeleted,
            _ => EndReason::Revoked,
        }
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How and when a session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ended {
    /// For a timeout, the deadline that passed.
    pub at: UnixTime,
    pub reason: EndReason,
    /// Who ended it, when someone did: a username, `client:<id>`, `system`.
    pub by: Option<String>,
    /// For a timeout, the limit that passed (the idle timeout or the maximum
    /// lifetime in force then), for the sentence a person reads.
    pub limit: Option<Secs>,
}

impl Ended {
    /// A stored revocation.
    pub fn revoked(r: &Revoked) -> Ended {
        Ended { at: r.at, reason: EndReason::of_revocation(&r.reason), by: r.by.clone(), limit: None }
    }

    /// A timeout at `deadline` under `limit`.
    pub fn timed_out(reason: EndReason, deadline: UnixTime, limit: Secs) -> Ended {
        Ended { at: deadline, reason, by: None, limit: Some(limit) }
    }

    /// The `error_description` of a refused refresh: a sentence an app can
    /// show its user as it is.
    pub fn description(&self) -> String {
        match (self.reason, self.limit) {
            (EndReason::IdleTimeout, Some(limit)) => {
                format!("the session ended after {} of inactivity", Words(limit))
            }
            (EndReason::IdleTimeout, None) => "the session ended after a period of inactivity".to_owned(),
            (EndReason::MaxLifetime, Some(limit)) => {
                format!("the session reached its maximum lifetime of {}", Words(limit))
            }
            (EndReason::MaxLifetime, None) => "the session reached its maximum lifetime".to_owned(),
            (EndReason::SignedOut, _) => "the session ended because the user signed out".to_owned(),
            (EndReason::Revoked, _) => "the session was revoked".to_owned(),
            (EndReason::ReuseDetected, _) => {
                "the session was ended because its refresh token was already used (possible theft)".to_owned()
            }
            (EndReason::UserDisabled, _) => "the session ended because the account was disabled".to_owned(),
            (EndReason::CredentialsChanged, _) => {
                "the session ended because the account's password was changed".to_owned()
            }
            (EndReason::SessionLimit, _) => {
                "the session ended because a newer sign-in went over the session limit".to_owned()
            }
            (EndReason::ClientDeleted, _) => "the session ended because the application was removed".to_owned(),
        }
    }

    /// The short phrase after "Ended: " in the console and listings:
    /// "idle for 30 min", "revoked by helpdesk".
    pub fn summary(&self) -> String {
        let by = |verb: &str| match &self.by {
            Some(by) if by != "system" => format!("{verb} by {}", by.strip_prefix("client:").unwrap_or(by)),
            _ => verb.to_owned(),
        };
        match (self.reason, self.limit) {
            (EndReason::IdleTimeout, Some(limit)) => format!("idle for {}", Short(limit)),
            (EndReason::IdleTimeout, None) => "idle timeout".to_owned(),
            (EndReason::MaxLifetime, Some(limit)) => format!("maximum lifetime of {} reached", Short(limit)),
            (EndReason::MaxLifetime, None) => "maximum lifetime reached".to_owned(),
            (EndReason::SignedOut, _) => "signed out".to_owned(),
            (EndReason::Revoked, _) => by("revoked"),
            (EndReason::ReuseDetected, _) => "refresh token reused (possible theft)".to_owned(),
            (EndReason::UserDisabled, _) => by("account disabled"),
            (EndReason::CredentialsChanged, _) => "password changed".to_owned(),
            (EndReason::SessionLimit, _) => "session limit reached".to_owned(),
            (EndReason::ClientDeleted, _) => "application removed".to_owned(),
        }
    }
}

/// A duration in words: "30 minutes", "12 hours", "1 day 12 hours".
struct Words(Secs);

impl fmt::Display for Words {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = [(86_400, "day"), (3_600, "hour"), (60, "minute"), (1, "second")];
        let mut rest = self.0.as_secs();
        let mut parts = Vec::new();
        for (size, name) in units {
            let n = rest / size;
            if n > 0 {
                parts.push(format!("{n} {name}{}", if n == 1 { "" } else { "s" }));
                rest %= size;
            }
        }
        if parts.is_empty() {
            parts.push("0 seconds".to_owned());
        }
        f.write_str(&parts.join(" "))
    }
}

/// A duration as the console shows it: "30 min", "12 h", "1 d 12 h".
struct Short(Secs);

impl fmt::Display for Short {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = [(86_400, "d"), (3_600, "h"), (60, "min"), (1, "s")];
        let mut rest = self.0.as_secs();
        let mut parts = Vec::new();
        for (size, name) in units {
            let n = rest / size;
            if n > 0 {
                parts.push(format!("{n} {name}"));
                rest %= size;
            }
        }
        if parts.is_empty() {
            parts.push("0 s".to_owned());
        }
        f.write_str(&parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_revocations_map_to_the_reasons_of_spec_14() {
        for (stored, reason) in [
            ("logout", "signed_out"),
            ("console_signed_out", "signed_out"),
            ("user_revoked", "signed_out"),
            ("refresh_token_reuse", "reuse_detected"),
            ("authorization_code_replay", "reuse_detected"),
            ("user_disabled", "user_disabled"),
            ("credentials_changed", "credentials_changed"),
            ("session_limit", "session_limit"),
            ("client_deleted", "client_deleted"),
            ("admin_revoked", "revoked"),
            ("revoked_by_client", "revoked"),
            ("something new", "revoked"),
        ] {
            assert_eq!(EndReason::of_revocation(stored).as_str(), reason, "{stored}");
        }
        assert_eq!(serde_json::to_string(&EndReason::IdleTimeout).unwrap(), "\"idle_timeout\"");
    }

    #[test]
    fn a_person_reads_why() {
        let idle = Ended::timed_out(EndReason::IdleTimeout, UnixTime(1_000), Secs::minutes(30));
        assert_eq!(idle.summary(), "idle for 30 min");
        assert_eq!(idle.description(), "the session ended after 30 minutes of inactivity");
        let max = Ended::timed_out(EndReason::MaxLifetime, UnixTime(1_000), Secs::new(36 * 3600));
        assert_eq!(max.description(), "the session reached its maximum lifetime of 1 day 12 hours");
        let revoked = Revoked { at: UnixTime(5), reason: "admin_revoked".into(), by: Some("helpdesk".into()) };
        assert_eq!(Ended::revoked(&revoked).description(), "the session was revoked");
        assert_eq!(Ended::revoked(&revoked).summary(), "revoked by helpdesk");
    }
}
