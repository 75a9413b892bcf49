//! Users (SPEC 10): list and search, create, show, change, disable, delete.
//! Users declared in the config file are listed read-only. Disabling or
//! deleting a user, or setting their password (SPEC 14), revokes all their
//! sessions in the same durable step as the change itself. Passwords are stored as argon2id hashes and never
//! returned.

use serde::{Deserialize, Serialize};

use super::actor::{Actor, hash_secret};
use super::error::{Result, ServiceError};
use crate::audit::{AuditEvent, EventKind};
use crate::clock::UnixTime;
use crate::oauth::client_spec::parse_permissions;
use crate::secret::PasswordHashString;
use crate::service::AppState;
use crate::session::Revoked;
use crate::store::{NoFallout, RetiredName, Store};
use crate::user::{User, check_name, check_username};

/// Why a disabled user's sessions ended.
pub const REASON_USER_DISABLED: &str = "user_disabled";
/// Why a user's sessions ended when their password changed (SPEC 14): an
/// administrator's reset ends all of them, the user's own change all but
/// the current one.
pub const REASON_CREDENTIALS_CHANGED: &str = "credentials_changed";

/// Users per page of `GET /admin/users`.
pub const PAGE_SIZE: usize = 50;
pub use crate::user::MIN_PASSWORD_CHARS;

/// A user as the admin API shows it (never a password or hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserView {
    pub username: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub permissions: Vec<String>,
    pub disabled: bool,
    /// `config` (read-only) or `admin`.
    pub source: String,
    pub created_at: Option<String>,
    /// The groups whose session policy applies to the user (SPEC 14).
    #[serde(default)]
    pub groups: Vec<String>,
}

impl UserView {
    fn of(user: &User, source: &str) -> Self {
        UserView {
            username: user.username.clone(),
            name: user.name.clone(),
            email: user.email.clone(),
            permissions: user.permissions.iter().map(|p| p.as_str().to_owned()).collect(),
            disabled: user.disabled,
            source: source.to_owned(),
            created_at: user.created_at.map(UnixTime::to_rfc3339),
            groups: user.groups.clone(),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserPage {
    pub users: Vec<UserView>,
    pub page: usize,
    pub next_page: Option<usize>,
}

fn store_err(e: crate::store::StoreError) -> ServiceError {
    ServiceError::store("reading or writing users", e)
}

/// Every user, config ones first on a name clash, sorted by username.
async fn all_users(state: &AppState) -> Result<Vec<UserView>> {
    let mut out: Vec<UserView> = state.users.values().map(|u| UserView::of(u, "config")).collect();
    for u in state.store.users().await.map_err(store_err)? {
        if !state.users.contains_key(&u.username) {
            out.push(UserView::of(&u, "admin"));
        }
    }
    out.sort_by(|a, b| a.username.cmp(&b.username));
    Ok(out)
}

/// `query`: case-insensitive substring of the username, name or email.
/// Pages count from 1.
pub async fn list(state: &AppState, query: Option<&str>, page: usize) -> Result<UserPage> {
    if page == 0 {
        return Err(ServiceError::Invalid("page: pages count from 1".into()));
    }
    let needle = query.map(str::to_lowercase).filter(|q| !q.is_empty());
    let matching: Vec<UserView> = all_users(state)
        .await?
        .into_iter()
        .filter(|u| {
            needle.as_deref().is_none_or(|q| {
                [Some(&u.username), u.name.as_ref(), u.email.as_ref()]
                    .into_iter()
                    .flatten()
                    .any(|field| field.to_lowercase().contains(q))
            })
        })
        .collect();
    let start = (page - 1).saturating_mul(PAGE_SIZE);
    let users: Vec<UserView> = matching.iter().skip(start).take(PAGE_SIZE).cloned().collect();
    let next_page = (matching.len() > start.saturating_add(PAGE_SIZE)).then_some(page + 1);
    Ok(UserPage { users, page, next_page })
}

pub async fn show(state: &AppState, username: &str) -> Result<UserView> {
    if let Some(u) = state.users.get(username) {
        return Ok(UserView::of(u, "config"));
    }
    state
        .store
        .user(username)
        .await
        .map_err(store_err)?
        .map(|u| UserView::of(&u, "admin"))
        .ok_or_else(|| unknown(username))
}

fn unknown(username: &str) -> ServiceError {
    ServiceError::NotFound(format!("no user named {username:?}"))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_hash: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub permissions: Vec<String>,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// A user's `groups` checked: `system:administer` sets them (a group
/// decides how long sessions live), each a known group (SPEC 14); sorted,
/// without repeats.
pub fn groups_of(state: &AppState, actor: &Actor, username: &str, raw: &[String]) -> Result<Vec<String>> {
    if !raw.is_empty() && !actor.administer {
        return Err(ServiceError::Forbidden("setting groups needs the system:administer permission".into()));
    }
    let groups = crate::user::normalise_groups(raw).map_err(|m| ServiceError::Invalid(format!("groups: {m}")))?;
    let known = state.groups();
    if let Some(unknown) = groups.iter().find(|g| !known.contains(g)) {
        let names: Vec<&str> = known.0.keys().map(String::as_str).collect();
        return Err(ServiceError::InvalidSetting {
            key: "groups",
            message: format!(
                "users[{username}].groups: {unknown:?} is not a group; a user's groups must be groups of the \
                 session policy (known: {}) (field groups)",
                if names.is_empty() { "none".to_owned() } else { names.join(", ") }
            ),
        });
    }
    Ok(groups)
}

async fn password_hash(
    state: &AppState,
    password: Option<String>,
    hash: Option<String>,
) -> Result<Option<PasswordHashString>> {
    match (password, hash) {
        (Some(_), Some(_)) => {
            Err(ServiceError::Invalid("password: give either password or password_hash, not both".into()))
        }
        (Some(p), None) => {
            check_new_password("password", &p)?;
            Ok(Some(hash_secret(state, p).await?))
        }
        (None, Some(h)) => {
            PasswordHashString::parse(&h).map(Some).map_err(|e| ServiceError::Invalid(format!("password_hash: {e}")))
        }
        (None, None) => Ok(None),
    }
}

/// The rule every new password follows, `field` naming it in the refusal:
/// at least [`MIN_PASSWORD_CHARS`] characters.
pub(super) fn check_new_password(field: &str, password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ServiceError::Invalid(format!("{field}: must be at least {MIN_PASSWORD_CHARS} characters")));
    }
    Ok(())
}

fn check_user_name(name: &Option<String>) -> Result<()> {
    match name {
        Some(n) => check_name(n).map_err(|m| ServiceError::Invalid(format!("name: {m}"))),
        None => Ok(()),
    }
}

fn check_email(email: &Option<String>) -> Result<()> {
    match email {
        Some(e) if e.len() > 254 || e.chars().any(char::is_control) || !e.contains('@') => {
            Err(ServiceError::Invalid(format!("email: {e:?} is not an email address")))
        }
        _ => Ok(()),
    }
}

fn permissions_of(
    actor: &Actor,
    raw: &[String],
) -> Result<std::collections::BTreeSet<crate::oauth::client::Permission>> {
    let permissions = parse_permissions("permissions", raw)
        .map_err(|e| ServiceError::Invalid(format!("{}: {}", e.field, e.message)))?;
    if !permissions.is_empty() && !actor.administer {
        return Err(ServiceError::Forbidden("setting permissions needs the system:administer permission".into()));
    }
    Ok(permissions)
}

/// Create a user kept in the store.
pub async fn create(state: &AppState, actor: &Actor, new: NewUser, now: UnixTime) -> Result<UserView> {
    check_username(&new.username).map_err(|m| ServiceError::Invalid(format!("username: {m}")))?;
    check_email(&new.email)?;
    check_user_name(&new.name)?;
    let permissions = permissions_of(actor, &new.permissions)?;
    let groups = groups_of(state, actor, &new.username, &new.groups)?;
    if state.clients.get(&new.username).is_some() {
        return Err(ServiceError::Conflict(format!(
            "username: {:?} is a client id; a user must never share a client's subject",
            new.username
        )));
    }
    if state.any_user(&new.username).await.map_err(store_err)?.is_some() {
        return Err(ServiceError::Conflict(format!("username: a user {:?} already exists", new.username)));
    }
    // A username is its user's `sub`: given once, never again (RFC 9700 4.15).
    match state.store.retired_name(&new.username).await.map_err(store_err)? {
        Some(RetiredName::User) => {
            return Err(ServiceError::Conflict(format!(
                "username: {:?} belonged to a deleted user; a username is never given again, so the old \
                 user's subject never names someone else",
                new.username
            )));
        }
        Some(RetiredName::Client) => {
            return Err(ServiceError::Conflict(format!(
                "username: {:?} was the id of a deleted client; a user must never share a client's subject",
                new.username
            )));
        }
        None => {}
    }
    let password_hash = password_hash(state, new.password, new.password_hash)
        .await?
        .ok_or_else(|| ServiceError::Invalid("password: is required (or password_hash)".into()))?;
    let user = User {
        username: new.username,
        name: new.name,
        email: new.email,
        password_hash,
        permissions,
        disabled: new.disabled,
        created_at: Some(now),
        groups,
    };
    let view = UserView::of(&user, "admin");
    let event = AuditEvent::new(now, EventKind::UserCreated, actor.name.clone(), format!("user:{}", user.username))
        .details(serde_json::json!({
            "email": user.email,
            "permissions": view.permissions,
            "disabled": user.disabled,
            "groups": user.groups,
        }));
    state.store.write_user(&user.username, Some(&user), None, &NoFallout, &event).await.map_err(store_err)?;
    event.log();
    Ok(view)
}

/// Only `system:administer` may change a user who holds permissions: a
/// helpdesk (`users:edit`) that could reset an administrator's password
/// could sign in as them.
fn may_change(actor: &Actor, user: &User) -> Result<()> {
    if !user.permissions.is_empty() && !actor.administer {
        return Err(ServiceError::Forbidden(format!(
            "user {:?} holds permissions; changing or deleting them needs the system:administer permission",
            user.username
        )));
    }
    Ok(())
}

/// The same rule for a user's sessions: a helpdesk (`users:edit`) may not
/// sign out a user who holds permissions (SECURITY.md, "Authority and
/// cost"); only `system:administer` may. Everyone may end their own.
pub(super) fn may_revoke_sessions_of(actor: &Actor, user: &User) -> Result<()> {
    if !may_end_sessions(actor, &user.username, !user.permissions.is_empty()) {
        return Err(ServiceError::Forbidden(format!(
            "user {:?} holds permissions; revoking their sessions needs the system:administer permission",
            user.username
        )));
    }
    Ok(())
}

/// The helpdesk rule: whether `actor` may sign out the sessions of user
/// `username` (a user who `holds_permissions` is signed out only by
/// `system:administer`, or by themselves). Pages hide what it would refuse.
pub fn may_end_sessions(actor: &Actor, username: &str, holds_permissions: bool) -> bool {
    !holds_permissions || actor.administer || actor.name == username
}

/// The stored user `username`: 409 for a config user, 404 when unknown.
async fn stored(state: &AppState, username: &str) -> Result<User> {
    if state.users.contains_key(username) {
        return Err(ServiceError::Conflict(format!(
            "user {username:?} is declared in the config file and is read-only here; change the file"
        )));
    }
    state.store.user(username).await.map_err(store_err)?.ok_or_else(|| unknown(username))
}

/// A change to a stored user (`PATCH /admin/users/{username}`, the
/// console's user actions): each field given is set; `None` leaves it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserPatch {
    /// `Some(None)` clears the address.
    pub email: Option<Option<String>>,
    /// `Some(None)` clears the name.
    pub name: Option<Option<String>>,
    pub password: Option<String>,
    pub password_hash: Option<String>,
    pub permissions: Option<Vec<String>>,
    pub disabled: Option<bool>,
    /// The user's groups, replaced as a whole (SPEC 14).
    pub groups: Option<Vec<String>>,
}

/// A stored user that `actor` may change: read, and checked, before the
/// change is read (a config user is 409, an unknown one 404, a user with
/// permissions 403 for a helpdesk).
pub struct Editable(User);

pub async fn editable(state: &AppState, actor: &Actor, username: &str) -> Result<Editable> {
    let user = stored(state, username).await?;
    may_change(actor, &user)?;
    Ok(Editable(user))
}

/// Apply `patch` to the user [`editable`] found. Disabling, or setting a
/// password, revokes every session in the same durable step.
pub async fn update(
    state: &AppState,
    actor: &Actor,
    user: Editable,
    patch: UserPatch,
    now: UnixTime,
) -> Result<UserView> {
    let Editable(mut user) = user;
    let username = user.username.clone();
    let username = username.as_str();
    let was_disabled = user.disabled;
    // In the order of the fields' names, as the API reads them.
    let mut changed: Vec<String> = Vec::new();
    let mut group_change: Option<(Vec<String>, Vec<String>)> = None;
    if let Some(disabled) = patch.disabled {
        user.disabled = disabled;
        changed.push("disabled".into());
    }
    if let Some(email) = patch.email {
        user.email = email;
        check_email(&user.email)?;
        changed.push("email".into());
    }
    if let Some(raw) = patch.groups {
        if !actor.administer {
            return Err(ServiceError::Forbidden("changing groups needs the system:administer permission".into()));
        }
        let groups = groups_of(state, actor, username, &raw)?;
        if groups != user.groups {
            changed.push("groups".into());
            group_change = Some((std::mem::replace(&mut user.groups, groups.clone()), groups));
        }
    }
    if let Some(name) = patch.name {
        user.name = name;
        check_user_name(&user.name)?;
        changed.push("name".into());
    }
    if let Some(raw) = patch.permissions {
        if !actor.administer {
            return Err(ServiceError::Forbidden("changing permissions needs the system:administer permission".into()));
        }
        user.permissions = permissions_of(actor, &raw)?;
        changed.push("permissions".into());
    }
    let (password, hash) = (patch.password, patch.password_hash);
    let mut new_password = false;
    if let Some(h) = password_hash(state, password, hash).await? {
        user.password_hash = h;
        changed.push("password".into());
        new_password = true;
    }
    let disabling = user.disabled && !was_disabled;
    let kind = if disabling { EventKind::UserDisabled } else { EventKind::UserUpdated };
    let mut details = serde_json::json!({ "changed": changed });
    if let Some((old, new)) = group_change {
        details["groups"] = serde_json::json!({ "old": old, "new": new });
    }
    let mut event = AuditEvent::new(now, kind, actor.name.clone(), format!("user:{username}")).details(details);
    // Disabling, or a new password (SPEC 14), ends every session of the
    // user in the same durable step as the change itself.
    let reason =
        if disabling { Some(REASON_USER_DISABLED) } else { new_password.then_some(REASON_CREDENTIALS_CHANGED) };
    if let Some(reason) = reason {
        event = event.ending(reason);
    }
    let revoke = reason.map(|reason| Revoked { at: now, reason: reason.into(), by: Some(actor.name.clone()) });
    let fallout = fallout(state, actor, now);
    state.store.write_user(username, Some(&user), revoke.as_ref(), &fallout, &event).await.map_err(store_err)?;
    fallout.log_committed();
    event.log();
    Ok(UserView::of(&user, "admin"))
}

/// Delete a stored user; every session of theirs is revoked in the same step.
pub async fn delete(state: &AppState, actor: &Actor, username: &str, now: UnixTime) -> Result<()> {
    may_change(actor, &stored(state, username).await?)?;
    let event = AuditEvent::new(now, EventKind::UserDeleted, actor.name.clone(), format!("user:{username}"))
        .ending("user_deleted");
    let revoke = Revoked { at: now, reason: "user_deleted".into(), by: Some(actor.name.clone()) };
    let fallout = fallout(state, actor, now);
    state.store.write_user(username, None, Some(&revoke), &fallout, &event).await.map_err(store_err)?;
    fallout.log_committed();
    event.log();
    Ok(())
}

/// What revoking a user's sessions sets off (back-channel fan-out, the
/// revocation feed's events, the audit event), written by the store in the
/// same step as a disable or a delete.
fn fallout<'a>(state: &'a AppState, actor: &Actor, now: UnixTime) -> crate::service::revocation::Fallout<'a> {
    state.revocation(now).fallout(&actor.name)
}
