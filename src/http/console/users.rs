//! `/console/users` (`users:edit`): the user list, one user's page and
//! its actions (disable, enable, password, permissions, sessions).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::ConsoleState;
use super::extract::{CsrfForm, EditUsers, PageViewer, UsersViewer};
use super::home::not_found;
use super::page::{Confirm, actor, chrome, confirm, enc, failed, message_of, render, signed_out_of_console, status_of};
use super::session::{Viewer, see_other};
use super::view::{Chrome, EndedRow, SessionRow, session_rows};
use crate::http::form::Form;
use crate::http::pages::PageError;
use crate::oauth::client::Permission;
use crate::service::users::UserPatch;
use crate::service::{self, ServiceError};

#[derive(Template)]
#[template(path = "console/users.html")]
pub struct UsersPage {
    pub chrome: Chrome,
    pub query: String,
    pub users: Vec<crate::service::users::UserView>,
    pub page: usize,
    pub next_page: Option<usize>,
    pub error: Option<String>,
    pub form_username: String,
    pub form_email: String,
    pub can_set_permissions: bool,
}

#[derive(Template)]
#[template(path = "console/user.html")]
pub struct UserPage {
    pub chrome: Chrome,
    pub user: crate::service::users::UserView,
    pub read_only: bool,
    pub error: Option<String>,
    pub can_set_permissions: bool,
    pub has_administer: bool,
    pub has_users_edit: bool,
    /// Every group of the session policy, and whether the user is in it.
    pub all_groups: Vec<GroupCheck>,
    pub sessions: Vec<SessionRow>,
    pub sessions_caption: &'static str,
    /// Whether the viewer may sign this user's sessions out (the helpdesk
    /// rule); without it the page shows no Revoke buttons.
    pub may_revoke: bool,
    /// Sessions that ended in the last 30 days, with why (SPEC 14).
    pub ended: Vec<EndedRow>,
}

/// One checkbox of the user page's "Groups" form.
pub struct GroupCheck {
    pub name: String,
    pub member: bool,
}

#[derive(serde::Deserialize, Default)]
pub struct UsersQuery {
    #[serde(default)]
    query: String,
    #[serde(default)]
    page: Option<String>,
}

async fn users_page(
    state: &ConsoleState,
    viewer: &Viewer,
    query: &str,
    page: usize,
    error: Option<String>,
    typed: Option<&Form>,
) -> Response {
    let listed = match service::users::list(state, Some(query), page).await {
        Ok(l) => l,
        Err(e) => return failed(viewer, e, "/console/users").await,
    };
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let page = UsersPage {
        chrome: chrome(viewer, "Users", "/console/users").await,
        query: query.to_owned(),
        users: listed.users,
        page: listed.page,
        next_page: listed.next_page,
        error,
        form_username: typed.map(|f| f.text("username")).unwrap_or_default(),
        form_email: typed.map(|f| f.text("email")).unwrap_or_default(),
        can_set_permissions: viewer.has(Permission::SystemAdminister),
    };
    render(status, page)
}

/// `GET /console/users?query=&page=` (`users:edit`).
pub async fn users(
    State(state): State<ConsoleState>,
    Query(q): Query<UsersQuery>,
    PageViewer { viewer, .. }: UsersViewer,
) -> Result<Response, PageError> {
    let page = q.page.as_deref().and_then(|p| p.parse().ok()).filter(|p| *p > 0).unwrap_or(1);
    Ok(users_page(&state, &viewer, q.query.trim(), page, None, None).await)
}

/// `POST /console/users`: create a user.
pub async fn user_create(
    State(state): State<ConsoleState>,
    CsrfForm { viewer, form, .. }: CsrfForm<EditUsers>,
) -> Result<Response, PageError> {
    let username = form.text("username");
    let email = Some(form.text("email")).filter(|e| !e.is_empty());
    let new = service::users::NewUser {
        username: username.clone(),
        password: form.get("password").map(str::to_owned).filter(|p| !p.is_empty()),
        password_hash: None,
        email,
        name: None,
        permissions: form.all("permissions"),
        disabled: false,
        groups: form.all("groups"),
    };
    Ok(match service::users::create(&state, &actor(&viewer), new, state.now()).await {
        Ok(user) => {
            viewer.flash(format!("User {} created.", user.username)).await;
            see_other(&format!("/console/users/{}", enc(&user.username)))
        }
        Err(e) => users_page(&state, &viewer, "", 1, Some(message_of(&e)), Some(&form)).await,
    })
}

async fn user_page(state: &ConsoleState, viewer: &Viewer, username: &str, error: Option<ServiceError>) -> Response {
    let user = match service::users::show(state, username).await {
        Ok(u) => u,
        Err(e) => return failed(viewer, e, "/console/users").await,
    };
    let now = state.now();
    let sessions =
        match service::sessions::listed_sessions(state, username, viewer.caller.claims.sid.as_deref(), now).await {
            Ok(s) => s,
            Err(e) => return failed(viewer, e, "/console/users").await,
        };
    // The helpdesk rule: no Revoke button the service would refuse.
    let may_revoke = service::users::may_end_sessions(&actor(viewer), &user.username, !user.permissions.is_empty());
    let (rows, ended) = session_rows(sessions, |s| {
        let action = match may_revoke {
            true => format!("/console/users/{}/sessions/{}/revoke", enc(username), enc(&s.sid)),
            false => String::new(),
        };
        SessionRow::of(s, action, "Revoke")
    });
    let status = error.as_ref().map(status_of).unwrap_or(StatusCode::OK);
    let error = error.as_ref().map(message_of);
    let has = |p: Permission| user.permissions.iter().any(|q| q == p.as_str());
    let page = UserPage {
        chrome: chrome(viewer, &user.username, "/console/users").await,
        read_only: user.source == "config",
        error,
        can_set_permissions: viewer.has(Permission::SystemAdminister),
        has_administer: has(Permission::SystemAdminister),
        has_users_edit: has(Permission::UsersEdit),
        all_groups: state
            .groups()
            .0
            .keys()
            .map(|g| GroupCheck { name: g.clone(), member: user.groups.contains(g) })
            .collect(),
        sessions: rows,
        sessions_caption: "Live sessions",
        may_revoke,
        ended,
        user,
    };
    render(status, page)
}

/// `GET /console/users/{username}` (`users:edit`).
pub async fn user(
    State(state): State<ConsoleState>,
    Path(username): Path<String>,
    PageViewer { viewer, .. }: UsersViewer,
) -> Result<Response, PageError> {
    Ok(user_page(&state, &viewer, &username, None).await)
}

/// `POST /console/users/{username}/{disable|enable|password|permissions}`.
pub async fn user_action(
    State(state): State<ConsoleState>,
    Path((username, action)): Path<(String, String)>,
    CsrfForm { viewer, form, .. }: CsrfForm<EditUsers>,
) -> Result<Response, PageError> {
    let back = format!("/console/users/{}", enc(&username));
    let mut patch = UserPatch::default();
    let done = match action.as_str() {
        "disable" => {
            if !form.confirmed() {
                let c = Confirm {
                    heading: "Disable this user?",
                    message: format!(
                        "{username} is signed out everywhere at once and cannot sign in until enabled again."
                    ),
                    details: Vec::new(),
                    action: format!("{back}/disable"),
                    confirm_label: "Disable user",
                    cancel_href: back.clone(),
                };
                return Ok(confirm(&viewer, &form, c).await);
            }
            patch.disabled = Some(true);
            format!("{username} is disabled and signed out everywhere.")
        }
        "enable" => {
            patch.disabled = Some(false);
            format!("{username} is enabled.")
        }
        "password" => {
            patch.password = Some(form.get("password").unwrap_or_default().to_owned());
            format!("The password of {username} was reset, and every session of theirs was signed out.")
        }
        "groups" => {
            patch.groups = Some(form.all("groups"));
            format!("The groups of {username} were saved; their session policy applies at each session's next check.")
        }
        "permissions" => {
            patch.permissions = Some(form.all("permissions"));
            format!("The permissions of {username} were saved; they apply from the user's next token.")
        }
        _ => return Ok(not_found().await),
    };
    let actor = actor(&viewer);
    let updated = match service::users::editable(&state, &actor, &username).await {
        Ok(user) => service::users::update(&state, &actor, user, patch, state.now()).await,
        Err(e) => Err(e),
    };
    Ok(match updated {
        // A new password ends every session of the user (SPEC 14): the
        // viewer's own console session too, when they reset their own.
        Ok(_) if action == "password" && username == viewer.username() => signed_out_of_console(&state, &viewer).await,
        Ok(_) => {
            viewer.flash(done).await;
            see_other(&back)
        }
        Err(ServiceError::NotFound(m)) => failed(&viewer, ServiceError::NotFound(m), "/console/users").await,
        Err(e) => user_page(&state, &viewer, &username, Some(e)).await,
    })
}

/// `POST /console/users/{username}/sessions/revoke-all`.
pub async fn user_revoke_all(
    State(state): State<ConsoleState>,
    Path(username): Path<String>,
    CsrfForm { viewer, form, .. }: CsrfForm<EditUsers>,
) -> Result<Response, PageError> {
    let back = format!("/console/users/{}", enc(&username));
    if !form.confirmed() {
        let c = Confirm {
            heading: "Revoke all sessions?",
            message: format!("{username} is signed out of every app on every device at once."),
            details: Vec::new(),
            action: format!("{back}/sessions/revoke-all"),
            confirm_label: "Revoke all sessions",
            cancel_href: back.clone(),
        };
        return Ok(confirm(&viewer, &form, c).await);
    }
    Ok(match service::sessions::revoke_user(&state, &actor(&viewer), &username, state.now()).await {
        Ok(()) => {
            if username == viewer.username() {
                return Ok(signed_out_of_console(&state, &viewer).await);
            }
            viewer.flash(format!("Every session of {username} was revoked.")).await;
            see_other(&back)
        }
        Err(e) => failed(&viewer, e, &back).await,
    })
}

/// `POST /console/users/{username}/sessions/{sid}/revoke`.
pub async fn user_revoke_session(
    State(state): State<ConsoleState>,
    Path((username, sid)): Path<(String, String)>,
    CsrfForm { viewer, form, .. }: CsrfForm<EditUsers>,
) -> Result<Response, PageError> {
    let back = format!("/console/users/{}", enc(&username));
    if !form.confirmed() {
        let c = Confirm {
            heading: "Revoke this session?",
            message: format!("{username} is signed out of every app that signed in through this session."),
            details: Vec::new(),
            action: format!("{back}/sessions/{}/revoke", enc(&sid)),
            confirm_label: "Revoke",
            cancel_href: back.clone(),
        };
        return Ok(confirm(&viewer, &form, c).await);
    }
    Ok(match service::sessions::revoke_user_session(&state, &actor(&viewer), &username, &sid, state.now()).await {
        Ok(()) => {
            if viewer.caller.claims.sid.as_deref() == Some(sid.as_str()) {
                return Ok(signed_out_of_console(&state, &viewer).await);
            }
            viewer.flash("The session was revoked.").await;
            see_other(&back)
        }
        Err(e) => failed(&viewer, e, &back).await,
    })
}
