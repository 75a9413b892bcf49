//! Group policy (SPEC 14): a group may tighten `idle_timeout`,
//! `max_lifetime`, `access_token_ttl` and `max_sessions` for its members,
//! never loosen them. A user in several groups gets the strictest value of
//! each key; with a client override, the strictest of all.
//!
//! Groups come from the config file (`[session.groups.NAME]`) and the admin
//! API (kept in the store; an admin-set group replaces the file's group of
//! the same name). The tightening is applied to every policy of the
//! history ([`PolicyHistory::for_groups`]), so the one deadline code
//! (`SessionPolicy::limits`, the family and session deadlines) serves
//! grouped users unchanged, and a group change applies at the next check.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::*;
use crate::clock::UnixTime;
use crate::duration::Secs;

/// One group's values (`[session.groups.NAME]`, the admin API body).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GroupPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Secs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lifetime: Option<Secs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_ttl: Option<Secs>,
    /// The most live sessions a member keeps (SPEC 14 "Session limit"):
    /// at least 1, and at most `session.max_sessions` when that is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sessions: Option<u32>,
}

/// The scope group keys are named in: `session.groups.admins.`.
pub fn group_scope(name: &str) -> String {
    format!("session.groups.{name}.")
}

/// Group names: 1 to 64 letters, digits, `-`, `_` or `.`, so they fit a
/// URL path segment and a TOML key unquoted.
pub fn check_group_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > 64 {
        return Err(format!("group name {name:?} must be 1 to 64 characters"));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err(format!("group name {name:?} may hold only letters, digits, '-', '_' and '.'"));
    }
    Ok(())
}

impl GroupPolicy {
    pub fn is_empty(&self) -> bool {
        *self == GroupPolicy::default()
    }

    fn as_override(&self) -> ClientSessionOverride {
        ClientSessionOverride {
            idle_timeout: self.idle_timeout,
            max_lifetime: self.max_lifetime,
            access_token_ttl: self.access_token_ttl,
        }
    }

    /// A group may only tighten `global` (refused like a loosening client
    /// override, naming the group, the key and the rule). `global_max_sessions`
    /// is `session.max_sessions` (0: no limit).
    pub fn validate(&self, name: &str, global: &SessionPolicy, global_max_sessions: u32) -> Result<(), PolicyError> {
        let scope = group_scope(name);
        self.as_override().validate_in(&scope, global)?;
        if let Some(n) = self.max_sessions {
            if n == 0 {
                return Err(PolicyError::other(
                    "max_sessions",
                    format!("{scope}max_sessions must be at least 1 (a group may only tighten the session limit)"),
                ));
            }
            if global_max_sessions > 0 && n > global_max_sessions {
                return Err(PolicyError::other(
                    "max_sessions",
                    format!("{scope}max_sessions ({n}) must not exceed session.max_sessions ({global_max_sessions})"),
                ));
            }
        }
        Ok(())
    }
}

/// Where a group's values come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupSource {
    File,
    Admin,
}

/// Every group in force: the file's, with the admin-set ones over them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Groups(pub BTreeMap<String, (GroupPolicy, GroupSource)>);

impl Groups {
    /// The file's groups with `admin` (from the store) over them.
    pub fn merge(file: &BTreeMap<String, GroupPolicy>, admin: &BTreeMap<String, GroupPolicy>) -> Groups {
        let mut all: BTreeMap<String, (GroupPolicy, GroupSource)> =
            file.iter().map(|(n, g)| (n.clone(), (g.clone(), GroupSource::File))).collect();
        for (n, g) in admin {
            all.insert(n.clone(), (g.clone(), GroupSource::Admin));
        }
        Groups(all)
    }

    pub fn get(&self, name: &str) -> Option<&GroupPolicy> {
        self.0.get(name).map(|(g, _)| g)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Validate every group against `global` (at start and after a change
    /// of the global policy).
    pub fn validate(&self, global: &SessionPolicy, global_max_sessions: u32) -> Result<(), PolicyError> {
        for (name, (g, _)) in &self.0 {
            g.validate(name, global, global_max_sessions)?;
        }
        Ok(())
    }

    /// The groups among `member_of` that hold values, by name (unknown
    /// names are skipped: a user write refuses them).
    pub fn of<'a>(&'a self, member_of: &'a [String]) -> Vec<(&'a str, &'a GroupPolicy)> {
        member_of.iter().filter_map(|n| self.get(n).map(|g| (n.as_str(), g))).filter(|(_, g)| !g.is_empty()).collect()
    }
}

impl Groups {
    /// The strictest `max_sessions` of the groups among `member_of`: the
    /// session limit a member's groups set (SPEC 14), `None` when none does.
    /// The caller takes the smaller of this and `session.max_sessions`.
    pub fn max_sessions(&self, member_of: &[String]) -> Option<u32> {
        strictest(self.of(member_of).into_iter().map(|(_, g)| g)).max_sessions
    }
}

/// The strictest of `groups`' values, key by key.
pub fn strictest<'a>(groups: impl IntoIterator<Item = &'a GroupPolicy>) -> GroupPolicy {
    fn min<T: Ord + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
    groups.into_iter().fold(GroupPolicy::default(), |acc, g| GroupPolicy {
        idle_timeout: min(acc.idle_timeout, g.idle_timeout),
        max_lifetime: min(acc.max_lifetime, g.max_lifetime),
        access_token_ttl: min(acc.access_token_ttl, g.access_token_ttl),
        max_sessions: min(acc.max_sessions, g.max_sessions),
    })
}

impl SessionPolicy {
    /// This policy as a member of a group with the values `g` sees it:
    /// each of the group's limits put over the global one when stricter,
    /// for sessions with and without "Remember me" alike (as a client
    /// override applies to both).
    pub fn tightened(&self, g: &GroupPolicy) -> SessionPolicy {
        let mut p = self.clone();
        if let Some(max) = g.max_lifetime {
            p.max_lifetime = p.max_lifetime.min(max);
            p.remember_me_max_lifetime = p.remember_me_max_lifetime.min(max);
        }
        // The access-token lifetime as it was, before the idle timeout moves
        // (unset, it follows the idle timeout, tightened or not).
        let ttl = self.access_token_ttl.map(|t| t.min(p.idle_timeout.within(p.max_lifetime)));
        if let Some(idle) = g.idle_timeout {
            p.idle_timeout = IdleTimeout::After(idle.min(p.idle_timeout.within(p.max_lifetime)));
            p.remember_me_idle_timeout =
                IdleTimeout::After(idle.min(p.remember_me_idle_timeout.within(p.remember_me_max_lifetime)));
        }
        p.access_token_ttl = match (ttl, g.access_token_ttl) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (None, Some(b)) => Some(b.min(p.access_token_ttl())),
            (a, None) => a,
        };
        p
    }
}

impl PolicyHistory {
    /// The history as the member of groups with the (strictest) values `g`
    /// sees it: every policy tightened. `None` when `g` tightens nothing.
    pub fn for_groups(&self, g: &GroupPolicy) -> Option<PolicyHistory> {
        if g.idle_timeout.is_none() && g.max_lifetime.is_none() && g.access_token_ttl.is_none() {
            return None;
        }
        let entries: Vec<(UnixTime, SessionPolicy)> =
            self.entries().iter().map(|(from, p)| (*from, p.tightened(g))).collect();
        PolicyHistory::from_entries(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(idle: Option<u64>, max: Option<u64>, ttl: Option<u64>) -> GroupPolicy {
        GroupPolicy {
            idle_timeout: idle.map(Secs::minutes),
            max_lifetime: max.map(Secs::minutes),
            access_token_ttl: ttl.map(Secs::minutes),
            max_sessions: None,
        }
    }

    #[test]
    fn a_group_may_only_tighten() {
        let global = SessionPolicy::default();
        assert!(g(Some(10), Some(60), Some(5)).validate("admins", &global, 0).is_ok());
        assert_eq!(
            g(Some(31), None, None).validate("admins", &global, 0).expect_err("loosens").to_string(),
            "session.groups.admins.idle_timeout (31m) must not exceed session.idle_timeout (30m)"
        );
        assert_eq!(
            g(None, Some(13 * 60), None).validate("ops", &global, 0).expect_err("loosens").to_string(),
            "session.groups.ops.max_lifetime (13h) must not exceed session.max_lifetime (12h)"
        );
        assert_eq!(
            g(Some(0), None, None).validate("ops", &global, 0).expect_err("zero").to_string(),
            "session.groups.ops.idle_timeout must be greater than 0"
        );
        let limit = GroupPolicy { max_sessions: Some(3), ..Default::default() };
        assert!(limit.validate("ops", &global, 0).is_ok());
        assert!(limit.validate("ops", &global, 3).is_ok());
        assert_eq!(
            limit.validate("ops", &global, 2).expect_err("loosens").to_string(),
            "session.groups.ops.max_sessions (3) must not exceed session.max_sessions (2)"
        );
        let zero = GroupPolicy { max_sessions: Some(0), ..Default::default() };
        assert_eq!(zero.validate("ops", &global, 0).expect_err("zero").key(), "max_sessions");
    }

    #[test]
    fn names_fit_a_path_segment() {
        assert!(check_group_name("admins").is_ok());
        assert!(check_group_name("eu-ops_2.a").is_ok());
        assert!(check_group_name("").is_err());
        assert!(check_group_name("a/b").is_err());
        assert!(check_group_name("a b").is_err());
    }

    #[test]
    fn the_strictest_value_of_each_key_wins() {
        let s = strictest([&g(Some(10), None, Some(8)), &g(Some(20), Some(60), None), &g(None, Some(90), Some(4))]);
        assert_eq!(s, g(Some(10), Some(60), Some(4)));
        assert_eq!(strictest(std::iter::empty()), GroupPolicy::default());
    }

    #[test]
    fn tightened_limits_are_the_strictest_of_group_and_client() {
        let global = SessionPolicy::default();
        let overrides = [
            None,
            Some(ClientSessionOverride { idle_timeout: Some(Secs::minutes(5)), ..Default::default() }),
            Some(ClientSessionOverride { max_lifetime: Some(Secs::minutes(20)), ..Default::default() }),
            Some(ClientSessionOverride { access_token_ttl: Some(Secs::minutes(1)), ..Default::default() }),
        ];
        let groups =
            [g(Some(10), None, None), g(None, Some(15), None), g(None, None, Some(3)), g(Some(7), Some(600), Some(2))];
        for group in &groups {
            let p = global.tightened(group);
            for o in &overrides {
                for rm in [false, true] {
                    let plain = global.limits(rm, o.as_ref());
                    let got = p.limits(rm, o.as_ref());
                    let cap = |v: Secs, gv: Option<Secs>| gv.map_or(v, |gv| v.min(gv));
                    let max = cap(plain.max_lifetime, group.max_lifetime);
                    let idle = cap(plain.idle_timeout, group.idle_timeout).min(max);
                    let ttl = cap(plain.access_token_ttl, group.access_token_ttl).min(idle);
                    assert_eq!(got.max_lifetime, max, "{group:?} {o:?} {rm}");
                    assert_eq!(got.idle_timeout, idle, "{group:?} {o:?} {rm}");
                    assert_eq!(got.access_token_ttl, ttl, "{group:?} {o:?} {rm}");
                }
            }
        }
    }

    #[test]
    fn a_history_is_tightened_entry_by_entry() {
        let h = PolicyHistory::new(UnixTime(1), SessionPolicy::default());
        assert!(h.for_groups(&GroupPolicy::default()).is_none());
        let t = h.for_groups(&g(Some(10), None, None)).expect("tightened");
        assert_eq!(t.current().idle_timeout, IdleTimeout::After(Secs::minutes(10)));
        assert_eq!(t.entries()[0].0, UnixTime(1));
    }
}
