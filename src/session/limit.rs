//! A sign-in under the session limit (SPEC 14, "Session limit"): which of
//! the user's sessions it ends, or that it must wait for the user's choice.
//! Pure: the store runs [`admit`] inside the step that stores the new
//! session, against the sessions it read in that step, so two sign-ins
//! racing at the limit cannot both slip under it.

use super::user_session::UserSession;
use crate::clock::UnixTime;
use crate::policy::{OnSessionLimit, PolicyHistory, SessionLimit};

/// What a sign-in under a limit does with the user's sessions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Store the new session, ending `end` (sids) in the same step.
    Start { end: Vec<String> },
    /// At the limit and nothing may be ended (`ask` with no choice, or a
    /// choice that no longer frees a place): store nothing.
    AtLimit { live: Vec<UserSession> },
}

/// Decide a sign-in against `limit`, given the user's `sessions` on record
/// (the user's revocation marker applied) at `now`:
/// - below the limit: start, ending nothing;
/// - `end_oldest`: end the least recently active live sessions until the
///   new one fits;
/// - `ask`: end `chosen` if it is live (and, if the limit was lowered, the
///   least recently active others beyond it), else at limit.
pub fn admit(
    limit: SessionLimit,
    history: &PolicyHistory,
    sessions: &[UserSession],
    chosen: Option<&str>,
    now: UnixTime,
) -> Admit {
    let mut live: Vec<&UserSession> = sessions.iter().filter(|s| s.is_live(history, &[], now)).collect();
    let cap = usize::try_from(limit.max).unwrap_or(usize::MAX);
    if live.len() < cap {
        return Admit::Start { end: Vec::new() };
    }
    // Oldest activity first; within a second the earlier sign-in (the
    // store's sequence), then the sid, so every replica agrees.
    live.sort_by(|a, b| (a.last_active, a.signed_in, a.seq, &a.sid).cmp(&(b.last_active, b.signed_in, b.seq, &b.sid)));
    let excess = live.len() + 1 - cap;
    match limit.on_limit {
        OnSessionLimit::EndOldest => Admit::Start { end: live.iter().take(excess).map(|s| s.sid.clone()).collect() },
        // The chosen session, and (when the limit was lowered below what
        // the user holds) the least recently active others beyond it.
        OnSessionLimit::Ask => match chosen {
            Some(sid) if live.iter().any(|s| s.sid == sid) => {
                let others = live.iter().filter(|s| s.sid != sid).take(excess - 1).map(|s| s.sid.clone());
                Admit::Start { end: std::iter::once(sid.to_owned()).chain(others).collect() }
            }
            _ => Admit::AtLimit { live: live.into_iter().cloned().collect() },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::Secs;
    use crate::policy::SessionPolicy;

    const T0: UnixTime = UnixTime(1_700_000_000);

    fn session(at: u64) -> UserSession {
        let (mut s, _) = UserSession::start("alice", false, None, None, T0.plus(Secs::new(at))).expect("rng");
        s.sid = format!("s{at}");
        s
    }

    fn limit(max: u64, on_limit: OnSessionLimit) -> SessionLimit {
        SessionLimit { max, on_limit }
    }

    #[test]
    fn end_oldest_ends_the_least_recently_active_live_sessions() {
        let history = PolicyHistory::new(T0, SessionPolicy::default());
        let now = T0.plus(Secs::new(100));
        let mut a = session(10);
        a.last_active = T0.plus(Secs::new(90));
        let (b, c) = (session(20), session(30));
        let sessions = vec![a, b, c];
        assert_eq!(
            admit(limit(3, OnSessionLimit::EndOldest), &history, &sessions, None, now),
            Admit::Start { end: vec!["s20".into()] },
            "s10 was active at 90, so s20 is the least recently active"
        );
        assert_eq!(
            admit(limit(1, OnSessionLimit::EndOldest), &history, &sessions, None, now),
            Admit::Start { end: vec!["s20".into(), "s30".into(), "s10".into()] },
            "a lowered limit ends every session beyond it"
        );
        assert_eq!(
            admit(limit(4, OnSessionLimit::EndOldest), &history, &sessions, None, now),
            Admit::Start { end: vec![] }
        );
    }

    #[test]
    fn dead_sessions_do_not_count() {
        let history = PolicyHistory::new(T0, SessionPolicy::default());
        let mut revoked = session(10);
        revoked.revoked = Some(super::super::Revoked { at: T0, reason: "logout".into(), by: None });
        let idle = session(0);
        let now = T0.plus(Secs::minutes(31));
        let live = session(60 * 31);
        let sessions = vec![revoked, idle, live];
        assert_eq!(
            admit(limit(2, OnSessionLimit::EndOldest), &history, &sessions, None, now),
            Admit::Start { end: vec![] }
        );
    }

    #[test]
    fn ask_ends_only_the_chosen_live_session() {
        let history = PolicyHistory::new(T0, SessionPolicy::default());
        let now = T0.plus(Secs::new(100));
        let sessions = vec![session(10), session(20)];
        let ask = limit(2, OnSessionLimit::Ask);
        assert!(matches!(admit(ask, &history, &sessions, None, now), Admit::AtLimit { live } if live.len() == 2));
        assert_eq!(admit(ask, &history, &sessions, Some("s20"), now), Admit::Start { end: vec!["s20".into()] });
        assert!(matches!(admit(ask, &history, &sessions, Some("other"), now), Admit::AtLimit { .. }));
        assert_eq!(admit(limit(3, OnSessionLimit::Ask), &history, &sessions, None, now), Admit::Start { end: vec![] });
    }
}
