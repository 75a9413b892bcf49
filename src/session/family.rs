//! The refresh-token family (SPEC 2, 5): created at code exchange, owned by
//! one user session and one client, holding the rotating chain.
//!
//! [`decide_refresh`] is the whole state machine of a refresh, as a pure
//! function the store runs inside its transaction (RFC 9700 4.14.2; RFC 6819
//! 5.2.2.3):
//!
//! | presented generation | family | result |
//! |---|---|---|
//! | current | alive | rotate: generation + 1 |
//! | current - 1, within the grace window | alive | the same successor again, no rotation |
//! | older (or current - 1 after the window) | any | reuse: the family is revoked |
//! | any | revoked or expired | refused, nothing changes |

use serde::{Deserialize, Serialize};

use super::Revoked;
use super::end::{EndReason, Ended};
use super::user_session::UserSession;
use crate::clock::UnixTime;
use crate::duration::Secs;
use crate::policy::{ClientSessionOverride, PolicyHistory, SessionPolicy};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Family {
    pub id: String,
    /// Random per family; binds its refresh tokens (see `refresh_token`).
    pub salt: String,
    pub sid: String,
    pub username: String,
    pub client_id: String,
    pub scope: String,
    /// The session's sign-in time (`auth_time`).
    pub auth_time: UnixTime,
    pub remember_me: bool,
    pub created_at: UnixTime,
    /// The generation of the one live refresh token.
    pub generation: u64,
    /// When the current generation was issued: the family's last activity.
    pub rotated_at: UnixTime,
    /// The last interactive activity, which the idle clock counts from: a
    /// refresh that says `activity=background` rotates (`rotated_at` moves)
    /// but leaves this where it was (SPEC 13). `None` in records written
    /// before it existed, and for families never refreshed in the
    /// background: then `rotated_at` is the last activity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_at: Option<UnixTime>,
    /// Whether the client receives refresh tokens.
    pub issues_refresh_tokens: bool,
    pub revoked: Option<Revoked>,
    /// RFC 9449 5: the thumbprint of the DPoP key a public client bound the
    /// family to at code exchange; every refresh must prove it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
}

impl Family {
    /// When the idle clock last started: the last interactive refresh (or
    /// the code redemption).
    pub fn last_active(&self) -> UnixTime {
        self.active_at.unwrap_or(self.rotated_at)
    }
}

/// Whether a refresh was asked for by the user or ran on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activity {
    /// The default: the user is at work; the idle clock starts again.
    Interactive,
    /// `activity=background`: a silent refresh no user asked for. It rotates
    /// as usual but does not move the idle clock, so an unattended tab still
    /// signs its user out on time.
    Background,
}

/// The family's deadline under one policy: the earliest of the session's
/// absolute deadline, the client's own maximum from the family's creation,
/// and the idle deadline from its last rotation.
pub fn family_deadline(policy: &SessionPolicy, family: &Family, client: Option<&ClientSessionOverride>) -> UnixTime {
    let session = policy.limits(family.remember_me, None);
    let own = policy.limits(family.remember_me, client);
    session
        .absolute_deadline(family.auth_time)
        .min(own.absolute_deadline(family.created_at))
        .min(own.idle_deadline(family.last_active()))
}

/// The idle and absolute deadlines the client sees, under the current policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadlines {
    pub idle: UnixTime,
    pub absolute: UnixTime,
}

pub fn deadlines(policy: &SessionPolicy, family: &Family, client: Option<&ClientSessionOverride>) -> Deadlines {
    let session = policy.limits(family.remember_me, None);
    let own = policy.limits(family.remember_me, client);
    let absolute = session.absolute_deadline(family.auth_time).min(own.absolute_deadline(family.created_at));
    Deadlines { idle: own.idle_deadline(family.last_active()).min(absolute), absolute }
}

/// Whether the family may still be used at `now`: neither it nor its session
/// is revoked, and no policy in force since its last rotation let it expire.
pub fn is_alive(
    history: &PolicyHistory,
    family: &Family,
    session: Option<&UserSession>,
    client: Option<&ClientSessionOverride>,
    now: UnixTime,
) -> bool {
    family.revoked.is_none()
        && session.is_some_and(|s| s.revoked.is_none())
        && history.is_alive(family.last_active(), now, |p| family_deadline(p, family, client))
}

/// How and when the family ended, `None` while [`is_alive`] at `now` (SPEC
/// 14): its own revocation, its session's, or the deadline that passed
/// (idle timeout or maximum lifetime, with the limit in force then).
pub fn ended(
    history: &PolicyHistory,
    family: &Family,
    session: Option<&UserSession>,
    client: Option<&ClientSessionOverride>,
    now: UnixTime,
) -> Option<Ended> {
    if let Some(revoked) = &family.revoked {
        return Some(Ended::revoked(revoked));
    }
    match session {
        Some(s) => {
            if let Some(revoked) = &s.revoked {
                return Some(Ended::revoked(revoked));
            }
        }
        // The session record is gone (swept): long over, and no-one says why.
        None => {
            return Some(Ended { at: family.rotated_at, reason: EndReason::Revoked, by: None, limit: None });
        }
    }
    let death = history.death(family.last_active(), now, |p| family_deadline(p, family, client))?;
    Some(timed_out(death.policy, family, client, death.at))
}

/// Which clock ran out at `at` under `policy`: the idle one when its deadline
/// came strictly before both absolute ones, else the maximum lifetime (the
/// session's or the client's own, whichever came first).
fn timed_out(policy: &SessionPolicy, family: &Family, client: Option<&ClientSessionOverride>, at: UnixTime) -> Ended {
    let session = policy.limits(family.remember_me, None);
    let own = policy.limits(family.remember_me, client);
    let session_end = session.absolute_deadline(family.auth_time);
    let own_end = own.absolute_deadline(family.created_at);
    let idle_end = own.idle_deadline(family.last_active());
    if idle_end < session_end.min(own_end) {
        return Ended::timed_out(EndReason::IdleTimeout, at, own.idle_timeout);
    }
    let limit = if session_end <= own_end { session.max_lifetime } else { own.max_lifetime };
    Ended::timed_out(EndReason::MaxLifetime, at, limit)
}

/// The outcome of presenting generation `presented` of a genuine token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefreshDecision {
    /// Rotate: the new state, whose `generation` is the token to hand out.
    Rotate(Family),
    /// Within the grace window: hand out the current generation again.
    Grace(Family),
    /// A spent token was replayed: the family, now revoked.
    Reuse(Family),
    /// The family or its session has ended (SPEC 14: why and when, decided
    /// on the records the store read in this step); nothing changes.
    Ended(Ended),
    /// Refused without changing anything (a state never issued).
    Refused(&'static str),
}

/// Decide a refresh (see the module table). `ended` is the verdict of
/// [`ended`] at `now`: `None` while the family is alive.
pub fn decide_refresh(
    family: &Family,
    presented: u64,
    now: UnixTime,
    grace: Secs,
    ended: Option<Ended>,
    activity: Activity,
) -> RefreshDecision {
    if let Some(revoked) = &family.revoked {
        return RefreshDecision::Ended(ended.unwrap_or_else(|| Ended::revoked(revoked)));
    }
    if presented == family.generation {
        if let Some(ended) = ended {
            return RefreshDecision::Ended(ended);
        }
        let mut next = family.clone();
        next.generation += 1;
        next.rotated_at = now;
        next.active_at = match activity {
            Activity::Interactive => None,
            Activity::Background => Some(family.last_active()),
        };
        return RefreshDecision::Rotate(next);
    }
    if presented > family.generation {
        // Never issued by this state; a crash cannot lose an issued rotation
        // (rotations are durable before the response), so fail closed.
        return RefreshDecision::Refused("the refresh token is not valid");
    }
    let in_grace = presented + 1 == family.generation && now < family.rotated_at.plus(grace);
    if in_grace {
        return match ended {
            None => RefreshDecision::Grace(family.clone()),
            Some(ended) => RefreshDecision::Ended(ended),
        };
    }
    let mut killed = family.clone();
    killed.revoked = Some(Revoked { at: now, reason: "refresh_token_reuse".into(), by: None });
    RefreshDecision::Reuse(killed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: UnixTime = UnixTime(1_700_000_000);

    fn expired() -> Ended {
        Ended::timed_out(EndReason::IdleTimeout, T0, Secs::minutes(30))
    }

    fn family() -> Family {
        Family {
            id: "f".into(),
            salt: "s".into(),
            sid: "sid".into(),
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
        }
    }

    #[test]
    fn the_current_token_rotates() {
        let now = T0.plus(Secs::minutes(5));
        let RefreshDecision::Rotate(next) = decide_refresh(&family(), 1, now, Secs::ZERO, None, Activity::Interactive)
        else {
            panic!("rotates")
        };
        assert_eq!((next.generation, next.rotated_at), (2, now));
    }

    #[test]
    fn a_background_refresh_rotates_but_leaves_the_idle_clock() {
        let policy = SessionPolicy::default(); // idle 30 min, max 12 h
        let history = PolicyHistory::new(T0, policy.clone());
        let mut f = family();
        // Two silent refreshes, ten minutes apart.
        for (generation, minutes) in [(1, 10), (2, 20)] {
            let now = T0.plus(Secs::minutes(minutes));
            let ended = ended(&history, &f, Some(&session()), None, now);
            let RefreshDecision::Rotate(next) =
                decide_refresh(&f, generation, now, Secs::ZERO, ended, Activity::Background)
            else {
                panic!("rotates")
            };
            assert_eq!((next.generation, next.rotated_at, next.last_active()), (generation + 1, now, T0));
            f = next;
        }
        // The tokens it returns end at the idle deadline of the sign-in.
        assert_eq!(deadlines(&policy, &f, None).idle, T0.plus(Secs::minutes(30)));
        let at_deadline = T0.plus(Secs::minutes(30));
        assert!(!is_alive(&history, &f, Some(&session()), None, at_deadline), "signed out on time");
        // An interactive refresh before the deadline starts the clock again.
        let now = T0.plus(Secs::minutes(25));
        let RefreshDecision::Rotate(next) = decide_refresh(&f, 3, now, Secs::ZERO, None, Activity::Interactive) else {
            panic!("rotates")
        };
        assert_eq!(next.last_active(), now);
        assert!(is_alive(&history, &next, Some(&session()), None, at_deadline));
    }

    #[test]
    fn a_spent_token_kills_the_family_without_grace() {
        let mut f = family();
        f.generation = 2;
        f.rotated_at = T0.plus(Secs::new(10));
        let RefreshDecision::Reuse(killed) =
            decide_refresh(&f, 1, T0.plus(Secs::new(10)), Secs::ZERO, None, Activity::Interactive)
        else {
            panic!("reuse")
        };
        assert_eq!(killed.revoked.map(|r| r.reason), Some("refresh_token_reuse".to_owned()));
    }

    #[test]
    fn within_the_grace_window_the_predecessor_gets_the_same_successor() {
        let mut f = family();
        f.generation = 5;
        f.rotated_at = T0;
        let grace = Secs::new(30);
        assert_eq!(
            decide_refresh(&f, 4, T0.plus(Secs::new(29)), grace, None, Activity::Interactive),
            RefreshDecision::Grace(f.clone())
        );
        assert!(
            matches!(
                decide_refresh(&f, 4, T0.plus(Secs::new(30)), grace, None, Activity::Interactive),
                RefreshDecision::Reuse(_)
            ),
            "window over"
        );
        assert!(
            matches!(decide_refresh(&f, 3, T0, grace, None, Activity::Interactive), RefreshDecision::Reuse(_)),
            "only the immediate predecessor"
        );
        assert_eq!(
            decide_refresh(&f, 4, T0, grace, Some(expired()), Activity::Interactive),
            RefreshDecision::Ended(expired())
        );
    }

    #[test]
    fn revoked_or_expired_families_refuse_and_change_nothing() {
        let mut f = family();
        assert_eq!(
            decide_refresh(&f, 1, T0, Secs::ZERO, Some(expired()), Activity::Interactive),
            RefreshDecision::Ended(expired())
        );
        f.revoked = Some(Revoked { at: T0, reason: "logout".into(), by: None });
        assert!(matches!(
            decide_refresh(&f, 1, T0, Secs::ZERO, None, Activity::Interactive),
            RefreshDecision::Ended(Ended { reason: EndReason::SignedOut, .. })
        ));
        assert!(
            matches!(
                decide_refresh(&family(), 9, T0, Secs::ZERO, None, Activity::Interactive),
                RefreshDecision::Refused(_)
            ),
            "a future generation"
        );
    }

    fn history() -> PolicyHistory {
        PolicyHistory::new(T0, SessionPolicy::default())
    }

    fn session() -> UserSession {
        UserSession {
            sid: "sid".into(),
            username: "alice".into(),
            cookie_hash: String::new(),
            signed_in: T0,
            last_active: T0,
            remember_me: false,
            user_agent: None,
            ip: None,
            revoked: None,
            seq: 1,
            families: Default::default(),
        }
    }

    #[test]
    fn an_ended_family_says_which_clock_ran_out_and_when() {
        let s = session();
        let mut f = family();
        f.rotated_at = T0.plus(Secs::hours(1));
        let idle = ended(&history(), &f, Some(&s), None, T0.plus(Secs::hours(5))).expect("ended");
        assert_eq!(idle, Ended::timed_out(EndReason::IdleTimeout, T0.plus(Secs::minutes(90)), Secs::minutes(30)));
        assert_eq!(idle.description(), "the session ended after 30 minutes of inactivity");
        f.rotated_at = T0.plus(Secs::hours(11)).plus(Secs::minutes(50));
        let max = ended(&history(), &f, Some(&s), None, T0.plus(Secs::hours(13))).expect("ended");
        assert_eq!(max, Ended::timed_out(EndReason::MaxLifetime, T0.plus(Secs::hours(12)), Secs::hours(12)));
        let kubectl: ClientSessionOverride = toml::from_str("max_lifetime = \"1h\"").expect("valid");
        f.rotated_at = T0.plus(Secs::minutes(50));
        let own = ended(&history(), &f, Some(&s), Some(&kubectl), T0.plus(Secs::hours(2))).expect("ended");
        assert_eq!(own, Ended::timed_out(EndReason::MaxLifetime, T0.plus(Secs::hours(1)), Secs::hours(1)));
        assert!(ended(&history(), &f, Some(&s), None, T0.plus(Secs::minutes(60))).is_none(), "alive");
        let mut revoked = s.clone();
        revoked.revoked = Some(Revoked { at: T0, reason: "admin_revoked".into(), by: Some("helpdesk".into()) });
        let by = ended(&history(), &f, Some(&revoked), None, T0.plus(Secs::minutes(60))).expect("ended");
        assert_eq!((by.reason, by.summary()), (EndReason::Revoked, "revoked by helpdesk".to_owned()));
    }

    #[test]
    fn idle_expiry_from_the_last_rotation() {
        let mut f = family();
        f.rotated_at = T0.plus(Secs::hours(1));
        let s = session();
        assert!(is_alive(&history(), &f, Some(&s), None, T0.plus(Secs::hours(1)).plus(Secs::new(1799))));
        assert!(!is_alive(&history(), &f, Some(&s), None, T0.plus(Secs::hours(1)).plus(Secs::minutes(30))));
    }

    #[test]
    fn absolute_expiry_however_active() {
        let mut f = family();
        f.rotated_at = T0.plus(Secs::hours(11)).plus(Secs::minutes(59));
        let s = session();
        assert!(is_alive(&history(), &f, Some(&s), None, T0.plus(Secs::hours(11)).plus(Secs::minutes(59))));
        assert!(!is_alive(&history(), &f, Some(&s), None, T0.plus(Secs::hours(12))));
        let d = deadlines(history().current(), &f, None);
        assert_eq!(d.absolute, T0.plus(Secs::hours(12)));
        assert_eq!(d.idle, T0.plus(Secs::hours(12)), "the idle deadline never passes the absolute one");
    }

    #[test]
    fn a_client_override_caps_its_family_from_its_creation() {
        let kubectl: ClientSessionOverride = toml::from_str("max_lifetime = \"1h\"").expect("valid");
        let mut f = family();
        f.created_at = T0.plus(Secs::hours(5)); // single sign-on into kubectl 5 h after sign-in
        f.rotated_at = f.created_at.plus(Secs::minutes(50));
        let s = session();
        let end = f.created_at.plus(Secs::hours(1));
        assert!(is_alive(&history(), &f, Some(&s), Some(&kubectl), UnixTime(end.as_secs() - 1)));
        assert!(!is_alive(&history(), &f, Some(&s), Some(&kubectl), end));
    }

    #[test]
    fn remember_me_families_use_the_longer_pair() {
        let mut f = family();
        f.remember_me = true;
        let mut s = session();
        s.remember_me = true;
        assert!(is_alive(&history(), &f, Some(&s), None, T0.plus(Secs::days(6))));
        f.rotated_at = T0.plus(Secs::days(15));
        assert!(is_alive(&history(), &f, Some(&s), None, T0.plus(Secs::days(19))));
        assert!(!is_alive(&history(), &f, Some(&s), None, T0.plus(Secs::days(20))));
    }

    #[test]
    fn idle_off_leaves_only_the_absolute_clock() {
        let p = SessionPolicy { idle_timeout: crate::policy::IdleTimeout::Off, ..SessionPolicy::default() };
        let h = PolicyHistory::new(T0, p);
        let f = family();
        assert!(is_alive(&h, &f, Some(&session()), None, T0.plus(Secs::hours(11))), "11 h without activity");
        assert!(!is_alive(&h, &f, Some(&session()), None, T0.plus(Secs::hours(12))));
    }

    #[test]
    fn a_revoked_or_missing_session_kills_its_families() {
        let f = family();
        let mut s = session();
        s.revoked = Some(Revoked { at: T0, reason: "admin".into(), by: None });
        assert!(!is_alive(&history(), &f, Some(&s), None, T0));
        assert!(!is_alive(&history(), &f, None, None, T0));
    }
}

#[cfg(test)]
mod boundary_tests {
    use super::*;
    use crate::policy::IdleTimeout;

    const X: UnixTime = UnixTime(1_700_000_000);

    fn short() -> SessionPolicy {
        SessionPolicy {
            idle_timeout: IdleTimeout::After(Secs::new(1)),
            max_lifetime: Secs::new(1),
            access_token_ttl: Some(Secs::new(1)),
            ..SessionPolicy::default()
        }
    }

    #[test]
    fn shortened_then_restored_within_seconds_never_revives() {
        for start in [X, UnixTime(X.as_secs() - 1)] {
            for put in 0..2u64 {
                for delete in (put + 1)..4 {
                    let f = Family {
                        id: "f".into(),
                        salt: "s".into(),
                        sid: "sid".into(),
                        username: "alice".into(),
                        client_id: "web".into(),
                        scope: "openid".into(),
                        auth_time: X,
                        remember_me: false,
                        created_at: X,
                        generation: 1,
                        rotated_at: X,
                        active_at: None,
                        issues_refresh_tokens: true,
                        revoked: None,
                        jkt: None,
                    };
                    let mut h = PolicyHistory::new(start, SessionPolicy::default());
                    h.change(X.plus(Secs::new(put)), short());
                    let seen_dead_at = X.plus(Secs::new(1)).max(X.plus(Secs::new(put)));
                    assert!(!is_alive(&h, &f, Some(&session()), None, seen_dead_at));
                    h.change(X.plus(Secs::new(delete)).max(seen_dead_at), SessionPolicy::default());
                    let later = X.plus(Secs::new(5));
                    assert!(
                        !is_alive(&h, &f, Some(&session()), None, later),
                        "revived: start {start:?} put +{put} delete +{delete}: {:?}",
                        h.entries()
                            .iter()
                            .map(|(t, p)| (t.as_secs() - X.as_secs(), p.max_lifetime))
                            .collect::<Vec<_>>()
                    );
                }
            }
        }
    }

    fn session() -> UserSession {
        UserSession {
            sid: "sid".into(),
            username: "alice".into(),
            cookie_hash: String::new(),
            signed_in: X,
            last_active: X,
            remember_me: false,
            user_agent: None,
            ip: None,
            revoked: None,
            seq: 1,
            families: Default::default(),
        }
    }
}
