//! The user session (SPEC 2: `sid`), created when a user signs in at the
//! issuer, carried by the browser cookie, with the two clocks.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::Revoked;
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
    /// Last activity at the issuer (sign-in, single sign-on). Refreshes are
    /// activity too; they are read from the session's families.
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
}

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
        };
        Ok((session, CookieValue(format!("{sid}.{secret}"))))
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

    /// Alive at `now`: not revoked, and no policy in force since the last
    /// activity let it expire.
    pub fn is_alive(&self, history: &PolicyHistory, last_active: UnixTime, now: UnixTime) -> bool {
        let last_active = last_active.max(self.last_active);
        self.revoked.is_none() && history.is_alive(last_active, now, |p| self.deadline(p, last_active))
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
    fn a_revoked_session_is_dead() {
        let history = PolicyHistory::new(T0, SessionPolicy::default());
        let (mut s, _) = UserSession::start("alice", false, None, None, T0).expect("rng");
        s.revoked = Some(Revoked { at: T0, reason: "logout".into() });
        assert!(!s.is_alive(&history, T0, T0));
    }
}
