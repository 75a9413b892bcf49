//! `/console/account` (everyone): the viewer's own sessions.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::ConsoleState;
use super::extract::{CsrfForm, PageViewer};
use super::page::{Confirm, chrome, confirm, enc, failed, render, signed_out_of_console};
use super::session::see_other;
use super::view::{Chrome, EndedRow, SessionRow, session_rows};
use crate::http::pages::PageError;
use crate::service;

#[derive(Template)]
#[template(path = "console/account.html")]
pub struct AccountPage {
    pub chrome: Chrome,
    pub sessions: Vec<SessionRow>,
    pub sessions_caption: &'static str,
    /// Sessions that ended in the last 30 days, with why (SPEC 14).
    pub ended: Vec<EndedRow>,
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
