//! The user session (SPEC 2: `sid`), created when a user signs in at the
//! issuer, carried by the browser cookie, with the two clocks.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::Revoked;
use super::end::{EndReason, Ended};
use crate::clock::UnixTime;
use crate::policy::{PolicyHistory, SessionPolicy};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSession {
    /// Public identifier: the `sid` claim. Not a credential.
    pub sid: String,
    pub username: String,
    /// SHA-256 of the cookie secret (hex). The cookie is the credential.
    pub cookie_hash: String,
    /// Sign-in time: `auth_time`, and the start of the absolute clock.
    pub signed_in: UnixTime,
    /// Last activity: sign-in, single sign-on, a code redemption or a
    /// refresh of any of its families (SPEC 3). The store updates it
    /// atomically with each of them, so the liveness check reads this one
    /// record, never the families.
    pub last_active: UnixTime,
    pub remember_me: bool,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub revoked: Option<Revoked>,
    /// Assigned by the store when the session is first stored: a
    /// monotonic sequence, so revoking every session of a user is one
    /// marker ("every session before sequence N"), exact even within a second.
    #[serde(default)]
    pub seq: u64,
    /// The live families of each client in this session, oldest first, at
    /// most [`MAX_FAMILIES_PER_CLIENT`] each (see [`UserSession::admit_family`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub families: BTreeMap<String, Vec<String>>,
}

/// How many refresh-token families one client may hold in one user session.
/// Each code redemption starts a family; without a bound, an app that signs
/// in again and again in the same browser piles up families that all stay
/// alive. Beyond the bound the oldest is superseded (revoked, audited).
pub const MAX_FAMILIES_PER_CLIENT: usize = 5;

/// The session cookie's value: `sid.secret`.
pub struct CookieValue(pub String);

impl UserSession {
    /// A new session and the cookie that proves it.
    pub fn start(
        username: &str,
        remember_me: bool,
        user_agent: Option<String>,
        ip: Option<String>,
        now: UnixTime,
    ) -> Result<(UserSession, CookieValue), ring::error::Unspecified> {
        let mut secret = [0u8; 32];
        SystemRandom::new().fill(&mut secret)?;
        let secret = B64.encode(secret);
        let sid = super::new_id();
        let session = UserSession {
            cookie_hash: cookie_hash(&secret),
            sid: sid.clone(),
            username: username.to_owned(),
            signed_in: now,
            last_active: now,
            remember_me,
            user_agent,
            ip,
            revoked: None,
            seq: 0,
            families: BTreeMap::new(),
        };
        Ok((session, CookieValue(format!("{sid}.{secret}"))))
    }

    /// Record family `family_id`, just created for `client_id`, as the
    /// client's newest in this session. Returns the ids it supersedes, oldest
    /// first: those beyond `limit` for this client. The caller revokes them
    /// in the same transaction.
    pub fn admit_family(&mut self, client_id: &str, family_id: &str, limit: usize) -> Vec<String> {
        let ids = self.families.entry(client_id.to_owned()).or_default();
        if !ids.iter().any(|id| id == family_id) {
            ids.push(family_id.to_owned());
        }
        let excess = ids.len().saturating_sub(limit.max(1));
        ids.drain(..excess).collect()
    }

    /// Record activity at `now` (never moving backwards, never on a revoked
    /// session). Returns whether anything changed.
    pub fn record_activity(&mut self, now: UnixTime) -> bool {
        let changed = self.revoked.is_none() && self.last_active < now;
        if changed {
            self.last_active = now;
        }
        changed
    }

    /// Whether `cookie_secret` is this session's, in constant time.
    pub fn cookie_matches(&self, cookie_secret: &str) -> bool {
        bool::from(self.cookie_hash.as_bytes().ct_eq(cookie_hash(cookie_secret).as_bytes()))
    }

    /// The earliest deadline under `policy`: sign-in + max lifetime, last
    /// activity (`last_active`, at least this record's) + idle timeout.
    pub fn deadline(&self, policy: &SessionPolicy, last_active: UnixTime) -> UnixTime {
        policy.limits(self.remember_me, None).deadline(self.signed_in, last_active.max(self.last_active))
    }

    /// SPEC 3: a refresh of any of the session's families counts as
    /// activity of the session. The one place that rule is computed: the
    /// latest of the session's own activity and its `families`' (the store
    /// also records a refresh on the session record, so `&[]` suffices where
    /// the families are not at hand).
    pub fn last_activity(&self, families: &[super::family::Family]) -> UnixTime {
        families.iter().map(super::family::Family::last_active).fold(self.last_active, UnixTime::max)
    }

    /// Alive at `now`, counting its `families`' refreshes as activity
    /// ([`UserSession::last_activity`]).
    pub fn is_live(&self, history: &PolicyHistory, families: &[super::family::Family], now: UnixTime) -> bool {
        self.is_alive(history, self.last_activity(families), now)
    }

    /// Alive at `now`: not revoked, and no policy in force since the last
    /// activity let it expire.
    pub fn is_alive(&self, history: &PolicyHistory, last_active: UnixTime, now: UnixTime) -> bool {
        let last_active = last_active.max(self.last_active);
        self.revoked.is_none() && history.is_alive(last_active, now, |p| self.deadline(p, last_active))
    }

    /// How and when the session ended, `None` while it is alive at `now`
    /// (SPEC 14), counting its `families`' refreshes as activity: its
    /// revocation, or the deadline that passed (idle timeout or maximum
    /// lifetime, with the limit in force then).
    pub fn ended(&self, history: &PolicyHistory, families: &[super::family::Family], now: UnixTime) -> Option<Ended> {
        if let Some(revoked) = &self.revoked {
            return Some(Ended::revoked(revoked));
        }
        let last_active = self.last_activity(families);
        let death = history.death(last_active, now, |p| self.deadline(p, last_active))?;
        let limits = death.policy.limits(self.remember_me, None);
        Some(if limits.idle_deadline(last_active) < limits.absolute_deadline(self.signed_in) {
            Ended::timed_out(EndReason::IdleTimeout, death.at, limits.idle_timeout)
        } else {
            Ended::timed_out(EndReason::MaxLifetime, death.at, limits.max_lifetime)
        })
    }
}

/// Split a cookie value into `(sid, secret)`.
pub fn parse_cookie(value: &str) -> Option<(&str, &str)> {
    let (sid, secret) = value.split_once('.')?;
    (sid.len() == 32 && sid.bytes().all(|b| b.is_ascii_hexdigit()) && !secret.is_empty()).then_some((sid, secret))
}

fn cookie_hash(secret: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::Secs;

    const T0: UnixTime = UnixTime(1_700_000_000);

    #[test]
    fn the_cookie_proves_the_session_and_the_sid_alone_does_not() {
        let (s, cookie) = UserSession::start("alice", false, None, None, T0).expect("rng");
        let (sid, secret) = parse_cookie(&cookie.0).expect("well formed");
        assert_eq!(sid, s.sid);
        assert!(s.cookie_matches(secret));
        assert!(!s.cookie_matches(&s.sid));
        assert!(!s.cookie_matches(""));
        assert!(parse_cookie("nodot").is_none());
        assert!(parse_cookie("short.secret").is_none());
    }

    #[test]
    fn the_session_obeys_both_clocks() {
        let history = PolicyHistory::new(T0, SessionPolicy::default());
        let (s, _) = UserSession::start("alice", false, None, None, T0).expect("rng");
        assert!(s.is_alive(&history, T0, T0.plus(Secs::new(1799))));
        assert!(!s.is_alive(&history, T0, T0.plus(Secs::minutes(30))), "idle 30 min");
        // Activity (a refresh of any family) keeps it alive, up to 12 h.
        let active = T0.plus(Secs::hours(11));
        assert!(s.is_alive(&history, active, active.plus(Secs::minutes(20))));
        assert!(!s.is_alive(&history, active, T0.plus(Secs::hours(12))), "absolute 12 h");
        let (rm, _) = UserSession::start("alice", true, None, None, T0).expect("rng");
        assert!(rm.is_alive(&history, T0, T0.plus(Secs::days(6))), "remember me: 7 d idle");
    }

    #[test]
    fn a_client_keeps_at_most_the_limit_of_families_and_the_oldest_go_first() {
        let (mut s, _) = UserSession::start("alice", false, None, None, T0).expect("rng");
        for i in 0..5 {
            assert!(s.admit_family("web", &format!("f{i}"), 5).is_empty(), "within the limit");
        }
        assert_eq!(s.admit_family("web", "f5", 5), ["f0"]);
        assert_eq!(s.admit_family("web", "f6", 5), ["f1"]);
        assert!(s.admit_family("spa", "g0", 5).is_empty(), "each client has its own bound");
        assert_eq!(s.families["web"], ["f2", "f3", "f4", "f5", "f6"]);
        assert!(s.admit_family("web", "f6", 5).is_empty(), "admitting twice changes nothing");
        assert_eq!(s.admit_family("web", "f7", 2), ["f2", "f3", "f4", "f5"], "a lower limit trims at once");
        assert_eq!(s.admit_family("web", "f8", 0), ["f6", "f7"], "at least the newest stays");
        assert_eq!(s.families["web"], ["f8"]);
    }

    #[test]
    fn activity_moves_forward_only_and_never_revives() {
        let (mut s, _) = UserSession::start("alice", false, None, None, T0).expect("rng");
        assert!(s.record_activity(T0.plus(Secs::new(10))));
        assert!(!s.record_activity(T0.plus(Secs::new(5))), "an older refresh arriving late");
        assert_eq!(s.last_active, T0.plus(Secs::new(10)));
        s.revoked = Some(Revoked { at: T0, reason: "logout".into(), by: None });
        assert!(!s.record_activity(T0.plus(Secs::new(20))));
    }

    #[test]
    fn an_ended_session_says_why_and_when() {
        let history = PolicyHistory::new(T0, SessionPolicy::default());
        let (mut s, _) = UserSession::start("alice", false, None, None, T0).expect("rng");
        assert!(s.ended(&history, &[], T0.plus(Secs::minutes(29))).is_none());
        let idle = s.ended(&history, &[], T0.plus(Secs::hours(3))).expect("ended");
        assert_eq!(idle, Ended::timed_out(EndReason::IdleTimeout, T0.plus(Secs::minutes(30)), Secs::minutes(30)));
        assert_eq!(idle.summary(), "idle for 30 min");
        s.last_active = T0.plus(Secs::hours(11)).plus(Secs::minutes(45));
        let max = s.ended(&history, &[], T0.plus(Secs::hours(13))).expect("ended");
        assert_eq!(max, Ended::timed_out(EndReason::MaxLifetime, T0.plus(Secs::hours(12)), Secs::hours(12)));
        s.revoked = Some(Revoked { at: T0.plus(Secs::hours(1)), reason: "logout".into(), by: Some("alice".into()) });
        let out = s.ended(&history, &[], T0.plus(Secs::hours(13))).expect("ended");
        assert_eq!((out.reason, out.at), (EndReason::SignedOut, T0.plus(Secs::hours(1))));
    }

    #[test]
    fn a_revoked_session_is_dead() {
        let history = PolicyHistory::new(T0, SessionPolicy::default());
        let (mut s, _) = UserSession::start("alice", false, None, None, T0).expect("rng");
        s.revoked = Some(Revoked { at: T0, reason: "logout".into(), by: None });
        assert!(!s.is_alive(&history, T0, T0));
    }
}
