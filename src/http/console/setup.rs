//! `/console/setup` (SPEC 9 "First run"): the page that creates the first
//! administrator with the one-time token `serve` printed at start-up, then
//! signs them in. The rules (token, "no administrator yet", the user rules)
//! are `crate::service::setup`'s; this file reads the form and the cookies.
//!
//! The form is bound to the browser as the sign-in form is: a CSRF token,
//! the HMAC of the `tenure_csrf` cookie. A created administrator gets a
//! real sign-in session (the `tenure_session` cookie, through the sign-in
//! use case, audited) and is sent to `/console`, whose own code + PKCE
//! sign-in then completes silently.

use std::collections::HashMap;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

use super::CSS;
use super::ConsoleState;
use super::page::{plain, render};
use super::session::see_other;
use crate::http::authorize::{CSRF_COOKIE, SESSION_COOKIE};
use crate::http::cookies::{cookie, csrf_token, csrf_token_matches, is_csrf_cookie, new_csrf_cookie, set_cookie};
use crate::http::form::client_addr;
use crate::secret::Secret;
use crate::service::ServiceError;
use crate::service::setup::{self, FirstAdmin, SetupRefusal, SetupStatus};
use crate::service::signin::{self, SignIn, SignedIn};
use crate::user::MIN_PASSWORD_CHARS;

/// The first-run page (SPEC 9): create the first administrator.
#[derive(Template)]
#[template(path = "console/setup.html")]
pub struct SetupPage {
    pub token: String,
    pub csrf: String,
    pub username: String,
    /// Why the last post was refused, and which field it was about.
    pub error: Option<String>,
    pub error_field: &'static str,
    pub min_password: usize,
    pub css: &'static str,
}

fn done() -> Response {
    plain(
        StatusCode::OK,
        "Setup is done",
        "An administrator exists already, so this setup link has no more use. Sign in to the console with an administrator's account.",
        false,
    )
}

fn bad_token() -> Response {
    plain(
        StatusCode::FORBIDDEN,
        "This setup link does not work",
        "The setup link is wrong, has expired (it works for one hour) or was used already; no user was created. \
         Restart tenure: while no administrator exists, it prints a fresh setup URL at every start.",
        true,
    )
}

fn failed(message: &str) -> Response {
    plain(StatusCode::INTERNAL_SERVER_ERROR, "Setup failed", message, true)
}

/// The form, with `error` about `field`, and the browser's CSRF cookie (set
/// here unless it sent a valid one).
fn form_page(
    state: &ConsoleState,
    headers: &HeaderMap,
    status: StatusCode,
    token: &str,
    username: &str,
    error: Option<(&'static str, String)>,
) -> Response {
    let existing = cookie(headers, CSRF_COOKIE, state.is_https()).filter(|c| is_csrf_cookie(c)).map(str::to_owned);
    let (csrf_cookie, fresh) = match existing {
        Some(c) => (c, false),
        None => match new_csrf_cookie() {
            Ok(c) => (c, true),
            Err(_) => return failed("The server could not draw a random value."),
        },
    };
    let (error_field, error) = match error {
        Some((field, message)) => (field, Some(message)),
        None => ("", None),
    };
    let page = SetupPage {
        token: token.to_owned(),
        csrf: csrf_token(&state.csrf_key, &csrf_cookie),
        username: username.to_owned(),
        error,
        error_field,
        min_password: MIN_PASSWORD_CHARS,
        css: &CSS.path,
    };
    let mut response = render(status, page);
    if fresh && let Ok(v) = set_cookie(CSRF_COOKIE, &csrf_cookie, state.is_https(), None) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// `GET /console/setup?token=`: the form while the token is live and no
/// administrator exists; otherwise why not.
pub async fn page(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let token = query.get("token").map(String::as_str).unwrap_or_default();
    match setup::status(&state, token, state.now()).await {
        Ok(SetupStatus::Done) => done(),
        Ok(SetupStatus::BadToken) => bad_token(),
        Ok(SetupStatus::Open) => form_page(&state, &headers, StatusCode::OK, token, "", None),
        Err(_) => failed("The server could not read its users; see its log."),
    }
}

/// `POST /console/setup`: create the first administrator and sign them in.
pub async fn create(
    State(state): State<ConsoleState>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let token = field("token");
    let username = field("username").trim();
    match setup::is_done(&state).await {
        Ok(true) => return done(),
        Ok(false) => {}
        Err(_) => return failed("The server could not read its users; see its log."),
    }
    let csrf_ok = cookie(&headers, CSRF_COOKIE, state.is_https())
        .is_some_and(|c| csrf_token_matches(&state.csrf_key, c, field("csrf_token")));
    if !csrf_ok {
        let message = "This form did not come from this browser's setup page (or its cookie is gone), so nothing was created. Open the setup link again.";
        return plain(StatusCode::FORBIDDEN, "This form has expired", message, true);
    }
    let now = state.now();
    let first = FirstAdmin {
        username: username.to_owned(),
        password: Secret::new(field("password")),
        confirm: Secret::new(field("confirm_password")),
    };
    let again = |status, field: &'static str, message: String| {
        form_page(&state, &headers, status, token, username, Some((field, message)))
    };
    let created = match setup::create_first_admin(&state, token, first, now).await {
        Ok(created) => created,
        Err(SetupRefusal::Done) => return done(),
        Err(SetupRefusal::BadToken) => return bad_token(),
        Err(SetupRefusal::Admin(ServiceError::Unavailable { .. })) => {
            return again(StatusCode::SERVICE_UNAVAILABLE, "", "The server is busy; try again in a moment.".into());
        }
        Err(SetupRefusal::Admin(ServiceError::Internal(Some(context)))) => {
            return failed(&format!("The server could not create the administrator ({context}); see its log."));
        }
        Err(SetupRefusal::Admin(
            ServiceError::Invalid(m)
            | ServiceError::InvalidSetting { message: m, .. }
            | ServiceError::Conflict(m)
            | ServiceError::NotFound(m)
            | ServiceError::Forbidden(m),
        )) => {
            let field = ["username", "password", "confirm_password"]
                .into_iter()
                .find(|f| m.starts_with(&format!("{f}:")))
                .unwrap_or("username");
            return again(StatusCode::BAD_REQUEST, field, m);
        }
        Err(SetupRefusal::Admin(_)) => {
            return failed("The server could not create the administrator; see its log.");
        }
    };
    // Signed in as at the sign-in page: a session, its cookie, the audit
    // event; the console's own sign-in then finds the session.
    let remote = client_addr(&state.config.trusted_proxies, &headers, &extensions);
    let user_agent =
        headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|ua| ua.chars().take(512).collect());
    let password = field("password");
    let sign_in = SignIn {
        username: &created.username,
        password,
        remember_me: false,
        remote: &remote,
        user_agent,
        session_cookie: cookie(&headers, SESSION_COOKIE, state.is_https()),
        ask: None,
    };
    let mut response = see_other("/console");
    match signin::sign_in(&state, sign_in, now).await {
        Ok(SignedIn::Session { cookie_value, max_age }) => {
            if let Ok(v) = set_cookie(SESSION_COOKIE, &cookie_value, state.is_https(), max_age) {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
            // A fresh CSRF cookie, as after every sign-in.
            if let Some(v) =
                new_csrf_cookie().ok().and_then(|c| set_cookie(CSRF_COOKIE, &c, state.is_https(), None).ok())
            {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        // The administrator exists; they sign in at the sign-in page.
        Ok(SignedIn::Refused(refusal)) => {
            tracing::warn!(?refusal, "the first administrator was created but not signed in");
        }
        Ok(SignedIn::AtLimit(_)) => {
            tracing::warn!("the first administrator was created but not signed in: at the session limit");
        }
        Err(e) => tracing::warn!(error = ?e, "the first administrator was created but not signed in"),
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
