//! Explain and preview the session policy (SPEC 10).
//!
//! `explain`: for a client, a user and the "Remember me" choice, the
//! effective idle timeout, maximum lifetime, access-token lifetime and reuse
//! grace, each with the rule that decided it. The values are those of
//! [`SessionPolicy::limits`], the function every refresh uses; the rules are
//! derived beside it and a unit test keeps both in step.
//!
//! `preview`: what a proposed policy would do to the live sessions, counted
//! from the store without changing anything.

use std::collections::BTreeMap;

use serde::Serialize;

use super::error::{Result, ServiceError};
use crate::clock::UnixTime;
use crate::duration::Secs;
use crate::policy::{ClientSessionOverride, GroupPolicy, IdleTimeout, PolicyKey, PolicySources, SessionPolicy, Source};
use crate::service::AppState;
use crate::session::family::{self, Family};
use crate::store::Store;

/// One effective value and why it is what it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Decided {
    /// Seconds.
    pub value: u64,
    /// `default`, `file`, `env`, `admin`, `group`, `client`, `remember_me` or
    /// `ceiling`.
    pub rule: &'static str,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Explanation {
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub remember_me: bool,
    /// The user's groups (SPEC 14), when a user was named.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    pub idle_timeout: Decided,
    pub max_lifetime: Decided,
    pub access_token_ttl: Decided,
    pub refresh_reuse_grace: Decided,
    /// SPEC 14: the user's live sessions at most (0: no limit).
    pub max_sessions: Decided,
    /// What a sign-in at that limit does.
    pub on_session_limit: DecidedMode,
}

/// The effective `on_session_limit` and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DecidedMode {
    /// `end_oldest` or `ask`.
    pub value: &'static str,
    /// `default`, `file`, `env` or `admin`.
    pub rule: &'static str,
    pub reason: String,
}

/// The rules behind `policy.session_limit(member_of, groups)` (SPEC 14):
/// a group decides `max_sessions` when its limit is the strictest.
pub fn explain_session_limit(
    policy: &SessionPolicy,
    sources: &PolicySources,
    groups: &[(&str, &GroupPolicy)],
) -> (Decided, DecidedMode) {
    let from = |key: PolicyKey| {
        let s = sources.of(key);
        (source_rule(s), format!("session.{} ({}) from {}", key.name(), value_of(policy, key), source_words(s)))
    };
    let (rule, reason) = from(PolicyKey::MaxSessions);
    let mut max = Decided { value: policy.max_sessions, rule, reason };
    let strictest =
        groups.iter().filter_map(|(n, g)| g.max_sessions.map(|v| (*n, u64::from(v)))).min_by_key(|(_, v)| *v);
    if let Some((name, n)) = strictest
        && (policy.max_sessions == 0 || n < policy.max_sessions)
    {
        max = Decided {
            value: n,
            rule: "group",
            reason: format!("the user is in group {name}: session.groups.{name}.max_sessions ({n}) tightens it"),
        };
    }
    let (rule, reason) = from(PolicyKey::OnSessionLimit);
    (max, DecidedMode { value: policy.on_session_limit.as_str(), rule, reason })
}

fn source_rule(s: Source) -> &'static str {
    match s {
        Source::Default => "default",
        Source::File => "file",
        Source::Env => "env",
        Source::Admin => "admin",
    }
}

fn source_words(s: Source) -> &'static str {
    match s {
        Source::Default => "the built-in default",
        Source::File => "the config file",
        Source::Env => "the environment",
        Source::Admin => "the admin API",
    }
}

fn decided(value: Secs, rule: &'static str, reason: String) -> Decided {
    Decided { value: value.as_secs(), rule, reason }
}

/// The rules behind `policy.tightened(strictest(groups)).limits(remember_me,
/// client)`, pure: a group's or the client's value decides a key when it is
/// the strictest (SPEC 14).
pub fn explain_policy(
    policy: &SessionPolicy,
    sources: &PolicySources,
    remember_me: bool,
    groups: &[(&str, &GroupPolicy)],
    client: Option<(&str, &ClientSessionOverride)>,
) -> (Decided, Decided, Decided, Decided) {
    let from = |key: PolicyKey| {
        let s = sources.of(key);
        (s, format!("session.{} ({}) from {}", key.name(), value_of(policy, key), source_words(s)))
    };
    // Maximum lifetime.
    let (max_key, idle_key) = if remember_me {
        (PolicyKey::RememberMeMaxLifetime, PolicyKey::RememberMeIdleTimeout)
    } else {
        (PolicyKey::MaxLifetime, PolicyKey::IdleTimeout)
    };
    let (base_max, base_idle_setting) = if remember_me {
        (policy.remember_me_max_lifetime, policy.remember_me_idle_timeout)
    } else {
        (policy.max_lifetime, policy.idle_timeout)
    };
    let (s, words) = from(max_key);
    let mut max = if remember_me {
        decided(base_max, "remember_me", format!("\"Remember me\" was ticked: {words}"))
    } else {
        decided(base_max, source_rule(s), words)
    };
    // Idle timeout, before capping by the final maximum.
    let (s, words) = from(idle_key);
    let base_idle = base_idle_setting.within(base_max);
    let idle_words = match base_idle_setting {
        IdleTimeout::Off => format!("{words}: off, so it follows the maximum lifetime"),
        IdleTimeout::After(_) => words,
    };
    let mut idle = if remember_me {
        decided(base_idle, "remember_me", format!("\"Remember me\" was ticked: {idle_words}"))
    } else {
        decided(base_idle, source_rule(s), idle_words)
    };
    // Access-token lifetime.
    let mut ttl = match policy.access_token_ttl {
        Some(t) => {
            let (s, words) = from(PolicyKey::AccessTokenTtl);
            decided(t, source_rule(s), words)
        }
        None => {
            let (s, words) = from(PolicyKey::IdleTimeout);
            decided(
                policy.access_token_ttl(),
                source_rule(s),
                format!("access_token_ttl is not set: it follows {words}"),
            )
        }
    };
    {
        let by_group = |current: &mut Decided, pick: fn(&GroupPolicy) -> Option<Secs>, key: &str| {
            let strictest = groups.iter().filter_map(|(n, g)| pick(g).map(|v| (*n, v))).min_by_key(|(_, v)| *v);
            if let Some((name, v)) = strictest
                && v.as_secs() < current.value
            {
                *current = decided(
                    v,
                    "group",
                    format!("the user is in group {name}: session.groups.{name}.{key} ({v}) tightens it"),
                );
            }
        };
        by_group(&mut max, |g| g.max_lifetime, "max_lifetime");
        by_group(&mut idle, |g| g.idle_timeout, "idle_timeout");
        by_group(&mut ttl, |g| g.access_token_ttl, "access_token_ttl");
    }
    if let Some((id, o)) = client {
        let tighter = |current: &mut Decided, own: Option<Secs>, key: &str| {
            if let Some(v) = own
                && v.as_secs() < current.value
            {
                *current = decided(v, "client", format!("clients[{id}].session.{key} ({v}) tightens it"));
            }
        };
        tighter(&mut max, o.max_lifetime, "max_lifetime");
        tighter(&mut idle, o.idle_timeout, "idle_timeout");
        tighter(&mut ttl, o.access_token_ttl, "access_token_ttl");
    }
    let ceiling = policy.max_lifetime_ceiling;
    if ceiling.as_secs() < max.value {
        max = decided(ceiling, "ceiling", format!("capped by the operator's session.max_lifetime_ceiling ({ceiling})"));
    }
    if max.value < idle.value {
        idle = Decided {
            value: max.value,
            rule: max.rule,
            reason: format!("capped by the maximum lifetime ({}): {}", Secs::new(max.value), max.reason),
        };
    }
    if idle.value < ttl.value {
        ttl = Decided {
            value: idle.value,
            rule: idle.rule,
            reason: format!("never above the idle timeout ({}): {}", Secs::new(idle.value), idle.reason),
        };
    }
    let (s, words) = from(PolicyKey::RefreshReuseGrace);
    let grace = decided(policy.refresh_reuse_grace, source_rule(s), words);
    (idle, max, ttl, grace)
}

fn value_of(policy: &SessionPolicy, key: PolicyKey) -> String {
    (key.def().effective)(policy).to_string()
}

/// `GET /admin/settings/session/explain`.
pub async fn explain(
    state: &AppState,
    client_id: Option<&str>,
    username: Option<&str>,
    remember_me: bool,
) -> Result<Explanation> {
    let client = match client_id {
        Some(id) => {
            Some(state.clients.get(id).ok_or_else(|| ServiceError::NotFound(format!("no client named {id:?}")))?)
        }
        None => None,
    };
    let member_of = match username {
        Some(u) => {
            state
                .any_user(u)
                .await
                .map_err(|e| ServiceError::store("reading a user", e))?
                .ok_or_else(|| ServiceError::NotFound(format!("no user named {u:?}")))?
                .groups
        }
        None => Vec::new(),
    };
    let policy = state.policy();
    let all_groups = state.groups();
    let groups = all_groups.of(&member_of);
    let over = client.as_ref().and_then(|c| c.session.as_ref().map(|o| (c.id.as_str(), o)));
    let (idle, max, ttl, grace) = explain_policy(&policy.0, &policy.1, remember_me, &groups, over);
    let (max_sessions, on_session_limit) = explain_session_limit(&policy.0, &policy.1, &groups);
    Ok(Explanation {
        client_id: client_id.map(str::to_owned),
        username: username.map(str::to_owned),
        remember_me,
        groups: member_of,
        idle_timeout: idle,
        max_lifetime: max,
        access_token_ttl: ttl,
        refresh_reuse_grace: grace,
        max_sessions,
        on_session_limit,
    })
}

/// How a proposed policy changes sessions of one kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Counts {
    pub ending_now: u64,
    pub shortened: u64,
    pub unchanged: u64,
    pub extended: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Preview {
    pub valid: bool,
    pub sessions_ending_now: u64,
    pub sessions_shortened: u64,
    pub sessions_unchanged: u64,
    /// Live sessions a loosened limit gives more time (dead ones stay dead).
    pub sessions_extended: u64,
    /// The same for each client's live families.
    pub by_client: BTreeMap<String, Counts>,
}

impl Counts {
    fn add(&mut self, old: UnixTime, new: UnixTime, now: UnixTime) {
        if new <= now {
            self.ending_now += 1;
        } else if new < old {
            self.shortened += 1;
        } else if new > old {
            self.extended += 1;
        } else {
            self.unchanged += 1;
        }
    }
}

/// What putting `proposed` in force now would do to the live sessions,
/// each as its user's groups tighten it (SPEC 14).
pub async fn preview(state: &AppState, proposed: &SessionPolicy, now: UnixTime) -> Result<Preview> {
    let current = state.history().current().clone();
    let groups = state.groups();
    preview_by_member(state, now, |member_of| {
        let g = crate::policy::strictest(groups.of(member_of).into_iter().map(|(_, g)| g));
        (current.tightened(&g), proposed.tightened(&g))
    })
    .await
}

/// What a change would do to the live sessions, where `policies(groups)`
/// gives the policy in force now and the proposed one for a member of
/// `groups` (a group change: the same global policy, other group values).
pub async fn preview_by_member(
    state: &AppState,
    now: UnixTime,
    policies: impl Fn(&[String]) -> (SessionPolicy, SessionPolicy),
) -> Result<Preview> {
    let store_err = |e| ServiceError::store("reading sessions for a preview", e);
    let clients = state.clients.snapshot();
    let mut sessions = Counts::default();
    let mut by_client: BTreeMap<String, Counts> = BTreeMap::new();
    // Each user's groups, read once per user.
    let mut member_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for session in state.store.all_sessions().await.map_err(store_err)? {
        if !member_of.contains_key(&session.username) {
            let groups = state.any_user(&session.username).await.map_err(store_err)?.map(|u| u.groups);
            member_of.insert(session.username.clone(), groups.unwrap_or_default());
        }
        let groups = member_of.get(&session.username).map(Vec::as_slice).unwrap_or_default();
        let history = state.history_of_member(groups);
        let (current, proposed) = policies(groups);
        let proposed = &proposed;
        let families = state.store.session_families(&session.sid).await.map_err(store_err)?;
        // SPEC 3: a refresh of any family counts as activity of its session.
        let last_active = families.iter().map(Family::last_active).fold(session.last_active, UnixTime::max);
        if !session.is_alive(&history, last_active, now) {
            continue;
        }
        let old = session.deadline(&current, last_active);
        let new = session.deadline(proposed, last_active);
        sessions.add(old, new, now);
        for f in &families {
            let over = clients.get(&f.client_id).and_then(|c| c.session.as_ref());
            if !family::is_alive(&history, f, Some(&session), over, now) {
                continue;
            }
            let old_f = family::family_deadline(&current, f, over).min(old);
            let new_f = family::family_deadline(proposed, f, over).min(new);
            by_client.entry(f.client_id.clone()).or_default().add(old_f, new_f, now);
        }
    }
    Ok(Preview {
        valid: true,
        sessions_ending_now: sessions.ending_now,
        sessions_shortened: sessions.shortened,
        sessions_unchanged: sessions.unchanged,
        sessions_extended: sessions.extended,
        by_client,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{PolicyLayer, PolicyLayers};

    fn resolved(file: PolicyLayer, admin: PolicyLayer) -> (SessionPolicy, PolicySources) {
        PolicyLayers { file, admin, ..PolicyLayers::default() }.resolve().expect("valid")
    }

    #[test]
    fn explained_values_are_the_limits_every_refresh_uses() {
        let layers = [
            (PolicyLayer::default(), PolicyLayer::default()),
            (
                PolicyLayer {
                    idle_timeout: Some(IdleTimeout::Off),
                    max_lifetime: Some(Secs::hours(8)),
                    ..Default::default()
                },
                PolicyLayer { access_token_ttl: Some(Secs::minutes(5)), ..Default::default() },
            ),
            (
                PolicyLayer {
                    max_lifetime_ceiling: Some(Secs::days(10)),
                    remember_me_max_lifetime: Some(Secs::days(10)),
                    ..Default::default()
                },
                PolicyLayer { idle_timeout: Some(IdleTimeout::After(Secs::minutes(10))), ..Default::default() },
            ),
        ];
        let overrides = [
            None,
            Some(ClientSessionOverride { max_lifetime: Some(Secs::hours(1)), ..Default::default() }),
            Some(ClientSessionOverride {
                idle_timeout: Some(Secs::minutes(5)),
                access_token_ttl: Some(Secs::minutes(2)),
                ..Default::default()
            }),
        ];
        let minutes = |m: u64| Some(Secs::minutes(m));
        let group_sets: [Vec<GroupPolicy>; 4] = [
            vec![],
            vec![GroupPolicy { idle_timeout: minutes(4), ..Default::default() }],
            vec![
                GroupPolicy { max_lifetime: minutes(50), access_token_ttl: minutes(3), ..Default::default() },
                GroupPolicy { idle_timeout: minutes(20), max_lifetime: minutes(40), ..Default::default() },
            ],
            vec![GroupPolicy { access_token_ttl: minutes(1), ..Default::default() }],
        ];
        for (file, admin) in layers {
            let (policy, sources) = resolved(file, admin);
            for set in &group_sets {
                let named: Vec<(&str, &GroupPolicy)> = set.iter().map(|g| ("g", g)).collect();
                let tightened = policy.tightened(&crate::policy::strictest(set.iter()));
                for o in &overrides {
                    for remember_me in [false, true] {
                        let limits = tightened.limits(remember_me, o.as_ref());
                        let (idle, max, ttl, _) =
                            explain_policy(&policy, &sources, remember_me, &named, o.as_ref().map(|o| ("k", o)));
                        let case = format!("{policy:?} {set:?} {o:?} {remember_me}");
                        assert_eq!(idle.value, limits.idle_timeout.as_secs(), "idle {case}");
                        assert_eq!(max.value, limits.max_lifetime.as_secs(), "max {case}");
                        assert_eq!(ttl.value, limits.access_token_ttl.as_secs(), "ttl {case}");
                    }
                }
            }
        }
    }

    #[test]
    fn each_value_names_the_rule_that_decided_it() {
        let (policy, sources) = resolved(
            PolicyLayer { max_lifetime: Some(Secs::hours(8)), ..Default::default() },
            PolicyLayer { idle_timeout: Some(IdleTimeout::After(Secs::minutes(20))), ..Default::default() },
        );
        let (idle, max, ttl, grace) = explain_policy(&policy, &sources, false, &[], None);
        assert_eq!((max.value, max.rule), (8 * 3600, "file"));
        assert_eq!((idle.value, idle.rule), (20 * 60, "admin"));
        assert_eq!(ttl.rule, "admin", "{}", ttl.reason);
        assert!(ttl.reason.contains("follows"), "{}", ttl.reason);
        assert_eq!(grace.rule, "default");
        let kubectl = ClientSessionOverride { max_lifetime: Some(Secs::hours(1)), ..Default::default() };
        let (idle, max, _, _) = explain_policy(&policy, &sources, false, &[], Some(("kubectl", &kubectl)));
        assert_eq!((max.value, max.rule), (3600, "client"));
        assert!(max.reason.contains("clients[kubectl].session.max_lifetime (1h)"), "{}", max.reason);
        assert_eq!((idle.value, idle.rule), (20 * 60, "admin"));
        let (_, max, _, _) = explain_policy(&policy, &sources, true, &[], None);
        assert_eq!((max.value, max.rule), (20 * 86400, "remember_me"));
        let (policy, sources) = resolved(
            PolicyLayer {
                max_lifetime_ceiling: Some(Secs::days(10)),
                remember_me_max_lifetime: Some(Secs::days(10)),
                ..Default::default()
            },
            PolicyLayer::default(),
        );
        let (idle, max, _, _) = explain_policy(&policy, &sources, true, &[], None);
        assert_eq!((max.value, max.rule), (10 * 86400, "remember_me"));
        assert_eq!(idle.rule, "remember_me");
        let _ = (policy, sources);
    }

    #[test]
    fn the_session_limit_names_where_it_came_from() {
        let (policy, sources) = resolved(
            PolicyLayer { max_sessions: Some(3), ..Default::default() },
            PolicyLayer { on_session_limit: Some(crate::policy::OnSessionLimit::Ask), ..Default::default() },
        );
        let (max, mode) = explain_session_limit(&policy, &sources, &[]);
        assert_eq!((max.value, max.rule), (3, "file"));
        assert_eq!(max.reason, "session.max_sessions (3) from the config file");
        assert_eq!((mode.value, mode.rule), ("ask", "admin"));
        let contractors = GroupPolicy { max_sessions: Some(2), ..Default::default() };
        let (max, _) = explain_session_limit(&policy, &sources, &[("contractors", &contractors)]);
        assert_eq!((max.value, max.rule), (2, "group"));
        assert_eq!(
            max.reason,
            "the user is in group contractors: session.groups.contractors.max_sessions (2) tightens it"
        );
        let loose = GroupPolicy { max_sessions: Some(3), ..Default::default() };
        let (max, _) = explain_session_limit(&policy, &sources, &[("loose", &loose)]);
        assert_eq!(max.rule, "file", "a group no stricter than the global limit does not decide");
    }

    #[test]
    fn the_strictest_group_or_client_is_named() {
        let (policy, sources) = resolved(PolicyLayer::default(), PolicyLayer::default());
        let admins = GroupPolicy { idle_timeout: Some(Secs::minutes(10)), ..Default::default() };
        let ops = GroupPolicy {
            idle_timeout: Some(Secs::minutes(15)),
            max_lifetime: Some(Secs::hours(2)),
            ..Default::default()
        };
        let groups = [("admins", &admins), ("ops", &ops)];
        let (idle, max, ttl, _) = explain_policy(&policy, &sources, false, &groups, None);
        assert_eq!((idle.value, idle.rule), (600, "group"));
        assert!(idle.reason.contains("session.groups.admins.idle_timeout (10m)"), "{}", idle.reason);
        assert_eq!((max.value, max.rule), (7200, "group"));
        assert!(max.reason.contains("group ops"), "{}", max.reason);
        assert_eq!(ttl.value, 600, "never above the idle timeout");
        let kubectl = ClientSessionOverride { idle_timeout: Some(Secs::minutes(5)), ..Default::default() };
        let (idle, max, _, _) = explain_policy(&policy, &sources, false, &groups, Some(("kubectl", &kubectl)));
        assert_eq!((idle.value, idle.rule), (300, "client"), "the client is stricter still");
        assert_eq!(max.rule, "group");
    }
}
