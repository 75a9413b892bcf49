//! `/console/account` (everyone): the viewer's own sessions, and changing
//! their own password (SPEC 14).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::Response;

use super::ConsoleState;
use super::extract::{CsrfForm, PageViewer};
use super::page::{Confirm, chrome, confirm, enc, failed, render, signed_out_of_console};
use super::session::{Viewer, see_other};
use super::view::{Chrome, EndedRow, SessionRow, session_rows};
use crate::http::form::client_addr;
use crate::http::pages::PageError;
use crate::service::account::PasswordChange;
use crate::service::{self, ServiceError};

#[derive(Template)]
#[template(path = "console/account.html")]
pub struct AccountPage {
    pub chrome: Chrome,
    pub sessions: Vec<SessionRow>,
    pub sessions_caption: &'static str,
    /// Sessions that ended in the last 30 days, with why (SPEC 14).
    pub ended: Vec<EndedRow>,
    pub password: PasswordForm,
}

/// The "Change password" form of My sessions.
pub struct PasswordForm {
    /// Whether the viewer's password can change here (not a config user).
    pub changeable: bool,
    /// The field the error is about, or empty.
    pub error_field: &'static str,
    pub min: usize,
}

impl PasswordForm {
    fn of(state: &ConsoleState, viewer: &Viewer, error_field: &'static str) -> Self {
        PasswordForm {
            changeable: !state.users.contains_key(viewer.username()),
            error_field,
            min: service::users::MIN_PASSWORD_CHARS,
        }
    }
}

/// The form again, with what was wrong (a refused change).
#[derive(Template)]
#[template(path = "console/password.html")]
pub struct PasswordPage {
    pub chrome: Chrome,
    pub password_error: Option<String>,
    pub password: PasswordForm,
}

/// `GET /console/account`: the viewer's own sessions (everyone).
pub async fn account(
    State(state): State<ConsoleState>,
    PageViewer { viewer, .. }: PageViewer,
) -> Result<Response, PageError> {
    let current = viewer.caller.claims.sid.clone();
    let sessions =
        match service::sessions::listed_sessions(&state, viewer.username(), current.as_deref(), state.now()).await {
            Ok(s) => s,
            Err(e) => return Ok(failed(&viewer, e, "/console/account").await),
        };
    let (rows, ended) = session_rows(sessions, |s| {
        let label = if s.current { "Sign out this session" } else { "Sign out" };
        let action = format!("/console/account/sessions/{}/revoke", enc(&s.sid));
        SessionRow::of(s, action, label)
    });
    let page = AccountPage {
        chrome: chrome(&viewer, "My sessions", "/console/account").await,
        sessions: rows,
        sessions_caption: "Your sessions",
        ended,
        password: PasswordForm::of(&state, &viewer, ""),
    };
    Ok(render(StatusCode::OK, page))
}

/// `POST /console/account/sessions/{sid}/revoke`: sign out one of the
/// viewer's sessions; the current one signs the console out too.
pub async fn account_revoke(
    State(state): State<ConsoleState>,
    Path(sid): Path<String>,
    CsrfForm { viewer, form: _, .. }: CsrfForm,
) -> Result<Response, PageError> {
    let username = viewer.username().to_owned();
    Ok(match service::sessions::revoke_own(&state, &username, &sid, state.now()).await {
        Ok(()) if viewer.caller.claims.sid.as_deref() == Some(sid.as_str()) => {
            signed_out_of_console(&state, &viewer).await
        }
        Ok(()) => {
            viewer.flash("That session was signed out.").await;
            see_other("/console/account")
        }
        Err(e) => failed(&viewer, e, "/console/account").await,
    })
}

/// `POST /console/account/sign-out-everywhere`.
pub async fn account_sign_out_everywhere(
    State(state): State<ConsoleState>,
    CsrfForm { viewer, form, .. }: CsrfForm,
) -> Result<Response, PageError> {
    if !form.confirmed() {
        let c = Confirm {
            heading: "Sign out everywhere?",
            message: "Every session of yours ends, this one included: every app on every device signs you out.".into(),
            details: Vec::new(),
            action: "/console/account/sign-out-everywhere".into(),
            confirm_label: "Sign out everywhere",
            cancel_href: "/console/account".into(),
        };
        return Ok(confirm(&viewer, &form, c).await);
    }
    let username = viewer.username().to_owned();
    Ok(match service::sessions::revoke_own_all(&state, &username, state.now()).await {
        Ok(()) => signed_out_of_console(&state, &viewer).await,
        Err(e) => failed(&viewer, e, "/console/account").await,
    })
}

/// `POST /console/account/password`: change the viewer's own password
/// (current, new, repeated). Every other session of theirs ends; this
/// console session stays signed in. A refusal shows the form again.
pub async fn account_password(
    State(state): State<ConsoleState>,
    extensions: Extensions,
    headers: HeaderMap,
    CsrfForm { viewer, form, .. }: CsrfForm,
) -> Result<Response, PageError> {
    let new_password = form.text("new_password");
    if new_password != form.text("repeat_password") {
        let message = "The new password and its repetition differ; nothing was changed. Type the same new password \
                       twice."
            .to_owned();
        return Ok(again(&state, &viewer, StatusCode::BAD_REQUEST, "repeat_password", message).await);
    }
    let Some(sid) = viewer.caller.claims.sid.clone() else {
        return Ok(failed(&viewer, ServiceError::Forbidden("this needs a user's session".into()), "/console").await);
    };
    let remote = client_addr(&state.config.trusted_proxies, &headers, &extensions);
    let current_password = form.text("current_password");
    let change = PasswordChange {
        current_password: &current_password,
        new_password: &new_password,
        current_sid: &sid,
        remote: &remote,
    };
    Ok(match service::account::change_password(&state, viewer.username(), change, state.now()).await {
        Ok(changed) if changed.current_kept => {
            viewer
                .flash("Your password was changed. Every other session of yours was signed out; this one stays.")
                .await;
            see_other("/console/account")
        }
        // This session ended meanwhile: the console is signed out too.
        Ok(_) => signed_out_of_console(&state, &viewer).await,
        Err(ServiceError::InvalidGrant(_)) => {
            let message = "Your current password was not right, so nothing was changed. Wrong attempts count \
                           against the sign-in limit."
                .to_owned();
            again(&state, &viewer, StatusCode::BAD_REQUEST, "current_password", message).await
        }
        Err(ServiceError::TooManyRequests { retry_after_secs, .. }) => {
            let message = format!(
                "Too many wrong passwords: nothing was checked or changed. Try again in {retry_after_secs} seconds."
            );
            again(&state, &viewer, StatusCode::TOO_MANY_REQUESTS, "current_password", message).await
        }
        Err(ServiceError::Invalid(m)) => {
            let field = if m.starts_with("current_password:") { "current_password" } else { "new_password" };
            let message = match m.split_once(": ") {
                Some(("new_password", rule)) => format!("The new password {rule}; nothing was changed."),
                Some(("current_password", rule)) => format!("The current password {rule}."),
                _ => m.clone(),
            };
            again(&state, &viewer, StatusCode::BAD_REQUEST, field, message).await
        }
        Err(e) => failed(&viewer, e, "/console/account").await,
    })
}

/// The "Change password" form again, with what was wrong about `field`.
async fn again(
    state: &ConsoleState,
    viewer: &Viewer,
    status: StatusCode,
    field: &'static str,
    message: String,
) -> Response {
    let page = PasswordPage {
        chrome: chrome(viewer, "Change password", "/console/account").await,
        password_error: Some(message),
        password: PasswordForm::of(state, viewer, field),
    };
    render(status, page)
}
