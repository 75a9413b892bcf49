//! Group policies (SPEC 14): list, show, set, delete and preview the
//! groups whose values tighten the session policy of their members. A
//! group set here is kept in the store (it replaces the config file's group
//! of the same name), validated like a client override (it may only
//! tighten), bound by `session.admin_floor` like every value set through
//! the admin API, audited (`settings_changed`, target
//! `session.groups.NAME`) and in force at each member session's next check.
//!
//! The JSON handlers (`http/settings.rs`), the console and the CLI call
//! these; the caller checks `system:administer`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::actor::Actor;
use super::error::{Result, ServiceError};
use crate::audit::{AuditEvent, EventKind};
use crate::clock::UnixTime;
use crate::policy::{GroupPolicy, GroupSource, Groups, PolicyKey, PolicyValue, check_group_name};
use crate::service::AppState;
use crate::store::Store;

/// A group as the admin API shows it: its values (seconds; absent when the
/// group leaves the key to the global policy) and where it comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct GroupView {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_lifetime: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token_ttl: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_sessions: Option<u32>,
    /// `file` (the config file's `[session.groups.NAME]`) or `admin`.
    pub source: &'static str,
}

impl GroupView {
    fn of(name: &str, g: &GroupPolicy, source: GroupSource) -> GroupView {
        GroupView {
            name: name.to_owned(),
            idle_timeout: g.idle_timeout.map(|d| d.as_secs()),
            max_lifetime: g.max_lifetime.map(|d| d.as_secs()),
            access_token_ttl: g.access_token_ttl.map(|d| d.as_secs()),
            max_sessions: g.max_sessions,
            source: match source {
                GroupSource::File => "file",
                GroupSource::Admin => "admin",
            },
        }
    }
}

fn store_err(e: crate::store::StoreError) -> ServiceError {
    ServiceError::store("changing group policies", e)
}

fn unknown(name: &str) -> ServiceError {
    ServiceError::NotFound(format!("no group named {name:?}"))
}

/// `GET /admin/settings/session/groups`: every group, by name.
pub fn list(state: &AppState) -> Vec<GroupView> {
    state.groups().0.iter().map(|(n, (g, s))| GroupView::of(n, g, *s)).collect()
}

/// `GET /admin/settings/session/groups/{name}`.
pub fn show(state: &AppState, name: &str) -> Result<GroupView> {
    let groups = state.groups();
    let (g, s) = groups.0.get(name).ok_or_else(|| unknown(name))?;
    Ok(GroupView::of(name, g, *s))
}

/// Check `g` as the group `name` (the name, tightening only, the admin
/// floor); the message names the group, the key and the rule.
pub fn check(state: &AppState, name: &str, g: &GroupPolicy) -> Result<()> {
    check_group_name(name).map_err(ServiceError::Invalid)?;
    let policy = state.policy();
    g.validate(name, &policy.0, global_max_sessions(state))
        .map_err(|e| ServiceError::InvalidSetting { key: e.key(), message: format!("{e} (field {})", e.key()) })?;
    let floor = policy.0.admin_floor;
    for (key, value) in [
        (PolicyKey::IdleTimeout, g.idle_timeout),
        (PolicyKey::MaxLifetime, g.max_lifetime),
        (PolicyKey::AccessTokenTtl, g.access_token_ttl),
    ] {
        if let Some(v) = value {
            super::settings::check_admin_floor(key.def(), PolicyValue::Secs(v), floor)?;
        }
    }
    Ok(())
}

/// `session.max_sessions` in force (0: no limit).
fn global_max_sessions(state: &AppState) -> u32 {
    u32::try_from(state.policy().0.max_sessions).unwrap_or(u32::MAX)
}

/// The groups in force if the admin-set ones were `admin`.
fn with_admin(state: &AppState, admin: &BTreeMap<String, GroupPolicy>) -> Groups {
    Groups::merge(&state.config.groups, admin)
}

/// `PUT /admin/settings/session/groups/{name}`: set (create or replace) the
/// group's values.
pub async fn put(state: &AppState, actor: &Actor, name: &str, g: GroupPolicy, now: UnixTime) -> Result<GroupView> {
    check(state, name, &g)?;
    let _serialised = state.settings_lock.lock().await;
    let mut admin = state.store.admin_groups().await.map_err(store_err)?;
    let old = state.groups().0.get(name).map(|(g, s)| GroupView::of(name, g, *s));
    admin.insert(name.to_owned(), g.clone());
    let new = GroupView::of(name, &g, GroupSource::Admin);
    let event = AuditEvent::new(now, EventKind::SettingsChanged, actor.name.clone(), format!("session.groups.{name}"))
        .details(serde_json::json!({ "group": name, "old": old, "new": new }));
    state.store.set_admin_groups(&admin, &event).await.map_err(store_err)?;
    event.log();
    state.set_groups(with_admin(state, &admin));
    Ok(new)
}

/// `DELETE /admin/settings/session/groups/{name}`: drop the admin-set
/// values. A group of the config file then applies again (its view is
/// returned); a group only set here is gone, unless users are still in it.
pub async fn delete(state: &AppState, actor: &Actor, name: &str, now: UnixTime) -> Result<Option<GroupView>> {
    let _serialised = state.settings_lock.lock().await;
    let mut admin = state.store.admin_groups().await.map_err(store_err)?;
    let Some(old) = admin.remove(name) else {
        return Err(if state.config.groups.contains_key(name) {
            ServiceError::Conflict(format!(
                "group {name:?} comes from the config file ([session.groups.{name}]); change or remove it there"
            ))
        } else {
            unknown(name)
        });
    };
    if !state.config.groups.contains_key(name) {
        let members = members(state, name).await?;
        if !members.is_empty() {
            return Err(ServiceError::Conflict(format!(
                "group {name:?} still has members ({}); take them out of it first",
                members.join(", ")
            )));
        }
    }
    let remaining = with_admin(state, &admin);
    let after = remaining.0.get(name).map(|(g, s)| GroupView::of(name, g, *s));
    let event = AuditEvent::new(now, EventKind::SettingsChanged, actor.name.clone(), format!("session.groups.{name}"))
        .details(serde_json::json!({
            "group": name,
            "old": GroupView::of(name, &old, GroupSource::Admin),
            "new": after,
        }));
    state.store.set_admin_groups(&admin, &event).await.map_err(store_err)?;
    event.log();
    state.set_groups(remaining);
    Ok(after)
}

/// The users in group `name`, config and stored.
pub async fn members(state: &AppState, name: &str) -> Result<Vec<String>> {
    let mut out: Vec<String> =
        state.users.values().filter(|u| u.groups.iter().any(|g| g == name)).map(|u| u.username.clone()).collect();
    for u in state.store.users().await.map_err(store_err)? {
        if !state.users.contains_key(&u.username) && u.groups.iter().any(|g| g == name) {
            out.push(u.username);
        }
    }
    out.sort();
    Ok(out)
}

/// `POST /admin/settings/session/groups/{name}/preview`: what setting the
/// group to `g` (or deleting it, with `None`) would do to its members' live
/// sessions, refused as the change would be. Nothing changes.
pub async fn preview(
    state: &AppState,
    name: &str,
    g: Option<&GroupPolicy>,
    now: UnixTime,
) -> Result<super::explain::Preview> {
    let mut admin = state.store.admin_groups().await.map_err(store_err)?;
    match g {
        Some(g) => {
            check(state, name, g)?;
            admin.insert(name.to_owned(), g.clone());
        }
        None => {
            admin.remove(name);
        }
    }
    let proposed = with_admin(state, &admin);
    let current = state.groups();
    let policy = state.history().current().clone();
    super::explain::preview_by_member(state, now, |member_of| {
        let old = crate::policy::strictest(current.of(member_of).into_iter().map(|(_, g)| g));
        let new = crate::policy::strictest(proposed.of(member_of).into_iter().map(|(_, g)| g));
        (policy.tightened(&old), policy.tightened(&new))
    })
    .await
}
