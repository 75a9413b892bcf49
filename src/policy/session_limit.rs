//! The session limit (SPEC 14, "Session limit"): how many live sessions a
//! user may keep (`session.max_sessions`, `0` = no limit) and what a
//! sign-in at the limit does (`session.on_session_limit`).
//!
//! [`SessionPolicy::session_limit`] is the one place the limit a user's
//! sessions are checked against is decided, from the policy and the user
//! (per-group limits fold in there: the strictest wins). Which sessions a
//! sign-in ends is `session::limit::admit`.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::SessionPolicy;

/// What a sign-in does when its user already has `max_sessions` live
/// sessions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnSessionLimit {
    /// The least recently active live session ends (reason
    /// `session_limit`).
    #[default]
    EndOldest,
    /// The sign-in page lists the live sessions; the user ends one to
    /// continue, or cancels.
    Ask,
}

impl OnSessionLimit {
    pub const ALL: [OnSessionLimit; 2] = [OnSessionLimit::EndOldest, OnSessionLimit::Ask];

    pub fn as_str(self) -> &'static str {
        match self {
            OnSessionLimit::EndOldest => "end_oldest",
            OnSessionLimit::Ask => "ask",
        }
    }
}

impl fmt::Display for OnSessionLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown `session.on_session_limit`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("session.on_session_limit must be one of end_oldest, ask; not {0:?}")]
pub struct UnknownOnSessionLimit(pub String);

impl std::str::FromStr for OnSessionLimit {
    type Err = UnknownOnSessionLimit;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OnSessionLimit::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| UnknownOnSessionLimit(s.to_owned()))
    }
}

/// The limit one user's sign-ins are checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimit {
    /// At most this many live sessions (at least 1).
    pub max: u64,
    pub on_limit: OnSessionLimit,
}

impl SessionPolicy {
    /// The session limit of a user in the groups `member_of`, `None` when
    /// there is none: the strictest of `session.max_sessions` (`0` is no
    /// limit) and the `max_sessions` of those groups (SPEC 14).
    pub fn session_limit(&self, member_of: &[String], groups: &super::Groups) -> Option<SessionLimit> {
        let global = (self.max_sessions > 0).then_some(self.max_sessions);
        let group = groups.max_sessions(member_of).map(u64::from);
        let max = match (global, group) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }?;
        Some(SessionLimit { max, on_limit: self.on_session_limit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_is_spelled_as_in_the_spec() {
        assert_eq!("ask".parse::<OnSessionLimit>(), Ok(OnSessionLimit::Ask));
        assert_eq!("end_oldest".parse::<OnSessionLimit>(), Ok(OnSessionLimit::EndOldest));
        let err = "newest".parse::<OnSessionLimit>().expect_err("unknown");
        assert_eq!(err.to_string(), "session.on_session_limit must be one of end_oldest, ask; not \"newest\"");
    }

    #[test]
    fn the_strictest_of_the_global_limit_and_the_groups_wins() {
        use crate::policy::{GroupPolicy, GroupSource, Groups};
        let group = |n| (GroupPolicy { max_sessions: Some(n), ..Default::default() }, GroupSource::File);
        let groups = Groups([("admins".to_owned(), group(2)), ("ops".to_owned(), group(3))].into_iter().collect());
        let member = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let mut policy = SessionPolicy::default();
        assert_eq!(policy.session_limit(&member(&[]), &groups), None, "no limit anywhere");
        assert_eq!(policy.session_limit(&member(&["ops"]), &groups).map(|l| l.max), Some(3), "the group's alone");
        assert_eq!(policy.session_limit(&member(&["ops", "admins"]), &groups).map(|l| l.max), Some(2));
        policy.max_sessions = 5;
        policy.on_session_limit = OnSessionLimit::Ask;
        assert_eq!(policy.session_limit(&member(&[]), &groups).map(|l| l.max), Some(5), "the global one");
        let limit = policy.session_limit(&member(&["admins"]), &groups).expect("a limit");
        assert_eq!((limit.max, limit.on_limit), (2, OnSessionLimit::Ask), "the group is stricter; the mode is global");
        policy.max_sessions = 1;
        assert_eq!(
            policy.session_limit(&member(&["admins"]), &groups).map(|l| l.max),
            Some(1),
            "the global is stricter"
        );
    }
}
