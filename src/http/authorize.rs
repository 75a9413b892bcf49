//! `GET /authorize` and `POST /login`: the HTTP side of the authorization
//! code flow (RFC 6749 4.1; OIDC Core 3.1.2; RFC 7636; RFC 9207). The
//! request rules live in [`crate::oauth::authorize`], the use cases (live
//! session, code issue, sign-in with throttle, argon2, audit and session
//! start) in [`crate::service::signin`]; this file reads cookies and the
//! form, and turns outcomes into redirects and pages.
//!
//! - The user session is carried by the `tenure_session` cookie (SPEC 2).
//! - The sign-in form is protected by a CSRF token: HMAC-SHA256 of the
//!   `tenure_csrf` cookie under a server key, checked in constant time.
//! - A sign-in renews the CSRF cookie.
//! - After a sign-in, the only place the browser is sent is our own
//!   `/authorize` with the original request (no open redirect, RFC 9700 4.11).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::cookies::{cookie, csrf_token, csrf_token_matches, is_csrf_cookie, new_csrf_cookie, set_cookie};
use super::form::{client_addr, read_page_form};
use super::pages::{self, Flow, PageError, SessionChoice, SessionLimitForm, SignInForm};
use crate::clock::UnixTime;
use crate::oauth::authorize::{AuthorizationRequest, AuthorizeError, Step, Target, query_after_sign_in};
use crate::oauth::params::Params;
use crate::service::signin::{self, Ask, AtLimit, Choice, Chosen, Refusal, SignIn, SignedIn};
use crate::service::{AppState, ServiceError};
use crate::session::user_session::UserSession;

pub const SESSION_COOKIE: &str = "tenure_session";
pub const CSRF_COOKIE: &str = "tenure_csrf";

const WRONG_CREDENTIALS: &str = "Wrong username or password.";
const SERVER_BUSY: &str = "The server is busy signing in other people. Try again in a moment.";

/// `GET /authorize`: validate the request, then issue a code to a live
/// session, show the sign-in page, or tell the client why not.
pub async fn authorize(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let now = state.now();
    let query = uri.query().unwrap_or("");
    authorization_response(&state, &headers, query, now).await.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /authorize` (OIDC Core 3.1.2.1): the same request as a form body.
pub async fn authorize_post(State(state): State<AppState>, request: Request) -> Response {
    let now = state.now();
    let (parts, body) = request.into_parts();
    let outcome = match read_form_text(&parts.headers, body).await {
        Ok(query) => authorization_response(&state, &parts.headers, &query, now).await,
        Err(e) => Err(e),
    };
    outcome.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /login/session-limit`: the user's choice on the "too many
/// sessions" page (SPEC 14, `ask`): end one session and continue, or cancel.
pub async fn session_limit(State(state): State<AppState>, request: Request) -> Response {
    let now = state.now();
    choose(&state, request, now).await.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /login`: check the sign-in form and continue the authorization.
pub async fn login(State(state): State<AppState>, request: Request) -> Response {
    let now = state.now();
    sign_in(&state, request, now).await.unwrap_or_else(IntoResponse::into_response)
}

async fn authorization_response(
    state: &AppState,
    headers: &HeaderMap,
    query: &str,
    now: UnixTime,
) -> Result<Response, PageError> {
    let parsed = Params::parse(query.as_bytes())
        .map_err(|e| AuthorizeError::ShowPage(e.description.into_owned()))
        .and_then(|params| AuthorizationRequest::parse(&params, &state.clients));
    let request = match parsed {
        Ok(request) => request,
        Err(AuthorizeError::ShowPage(message)) => return Err(PageError::BadRequest(Flow::SignIn, message)),
        Err(AuthorizeError::Redirect(e)) => return redirect(StatusCode::FOUND, &e.location(&state.issuer)),
    };
    let session = live_session(state, headers, now).await?;
    match (request.step(session.as_ref().map(|s| s.signed_in), now), session) {
        (Step::Refuse(e), _) => redirect(StatusCode::FOUND, &e.location(&state.issuer)),
        (Step::IssueCode, Some(session)) => issue_code(state, &request, session, now).await,
        (Step::SignIn | Step::IssueCode, _) => {
            let form = FormState { username: "", remember_me: false, error: None, return_to: query };
            sign_in_page(state, headers, &request.target, &form, StatusCode::OK)
        }
    }
}

/// The session of the `tenure_session` cookie, if it is alive at `now` and
/// its user still exists.
async fn live_session(state: &AppState, headers: &HeaderMap, now: UnixTime) -> Result<Option<UserSession>, PageError> {
    signin::live_session(state, cookie(headers, SESSION_COOKIE, state.is_https()), now).await.map_err(failed)
}

/// Issue a code to the session (SSO) and send the browser back to the client.
async fn issue_code(
    state: &AppState,
    request: &AuthorizationRequest,
    session: UserSession,
    now: UnixTime,
) -> Result<Response, PageError> {
    let code = signin::issue_code(state, request, &session, now).await.map_err(failed)?;
    redirect(StatusCode::FOUND, &request.code_location(&code, &state.issuer))
}

async fn sign_in(state: &AppState, request: Request, now: UnixTime) -> Result<Response, PageError> {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let remote = client_addr(&state.config.trusted_proxies, headers, &parts.extensions);
    let form = read_form(headers, body).await?;
    let return_to = form.get("return_to").unwrap_or("");

    // The form must come from a page we rendered for this browser.
    let csrf_ok = match (cookie(headers, CSRF_COOKIE, state.is_https()), form.get("csrf_token")) {
        (Some(cookie), Some(token)) => csrf_token_matches(&state.csrf_key, cookie, token),
        _ => false,
    };
    if !csrf_ok {
        let retry = Params::parse(return_to.as_bytes())
            .ok()
            .filter(|p| Target::identify(p, &state.clients).is_ok())
            .map(|_| format!("/authorize?{return_to}"));
        return Err(PageError::FormExpired { flow: Flow::SignIn, retry });
    }

    // Where to continue: our own /authorize with the original request.
    let params = Params::parse(return_to.as_bytes())
        .map_err(|e| PageError::BadRequest(Flow::SignIn, e.description.into_owned()))?;
    let target = Target::identify(&params, &state.clients).map_err(|m| PageError::BadRequest(Flow::SignIn, m))?;
    let next =
        query_after_sign_in(return_to).map_err(|e| PageError::BadRequest(Flow::SignIn, e.description.into_owned()))?;
    let next = format!("/authorize?{next}");

    let username = form.get("username").unwrap_or("");
    let password = form.get("password").unwrap_or("");
    let remember_me = form.get("remember_me") == Some("on");
    let again = |status, error: &str| {
        let form = FormState { username, remember_me, error: Some(error), return_to };
        sign_in_page(state, headers, &target, &form, status)
    };
    let again_later = |status, error: &str, retry_after_secs: u64| {
        let mut response = again(status, error)?;
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        Ok::<Response, PageError>(response)
    };
    let user_agent =
        headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|ua| ua.chars().take(512).collect());
    // The CSRF check above proved the browser holds this cookie.
    let browser = cookie(headers, CSRF_COOKIE, state.is_https()).unwrap_or_default();
    let form = SignIn {
        username,
        password,
        remember_me,
        remote: &remote,
        user_agent,
        session_cookie: cookie(headers, SESSION_COOKIE, state.is_https()),
        ask: Some(Ask { resume: return_to, browser }),
    };
    let (cookie_value, max_age) = match signin::sign_in(state, form, now).await.map_err(failed)? {
        SignedIn::Session { cookie_value, max_age } => (cookie_value, max_age),
        SignedIn::AtLimit(at_limit) => {
            return session_limit_page(state, headers, &LimitPage::of(&target), &at_limit, None, StatusCode::OK, now);
        }
        SignedIn::Refused(Refusal::MissingCredentials) => {
            return again(StatusCode::BAD_REQUEST, "Enter your username and password.");
        }
        SignedIn::Refused(Refusal::AccountThrottled { retry_after_secs: wait }) => {
            let message = format!(
                "Too many failed sign-in attempts for this account from your address. Try again in {}.",
                seconds(wait)
            );
            return again_later(StatusCode::TOO_MANY_REQUESTS, &message, wait);
        }
        SignedIn::Refused(Refusal::AddressThrottled { retry_after_secs: wait }) => {
            let message =
                format!("Too many failed sign-in attempts from your address. Try again in {}.", seconds(wait));
            return again_later(StatusCode::TOO_MANY_REQUESTS, &message, wait);
        }
        SignedIn::Refused(Refusal::Busy) => return again_later(StatusCode::SERVICE_UNAVAILABLE, SERVER_BUSY, 1),
        SignedIn::Refused(Refusal::WrongCredentials) => return again(StatusCode::UNAUTHORIZED, WRONG_CREDENTIALS),
    };
    signed_in(state, &next, &cookie_value, max_age)
}

/// The redirect after a sign-in to `next`, with the session cookie and a
/// fresh CSRF cookie (nothing bound to the signed-out state stays valid).
fn signed_in(state: &AppState, next: &str, cookie_value: &str, max_age: Option<u64>) -> Result<Response, PageError> {
    let mut response = redirect(StatusCode::SEE_OTHER, next)?;
    response
        .headers_mut()
        .append(header::SET_COOKIE, cookie_header(SESSION_COOKIE, cookie_value, state.is_https(), max_age)?);
    let csrf = new_csrf_cookie().map_err(|_| internal("drawing a CSRF cookie", "no randomness"))?;
    response.headers_mut().append(header::SET_COOKIE, cookie_header(CSRF_COOKIE, &csrf, state.is_https(), None)?);
    Ok(response)
}

async fn choose(state: &AppState, request: Request, now: UnixTime) -> Result<Response, PageError> {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let form = read_form(headers, body).await?;
    let csrf_cookie = cookie(headers, CSRF_COOKIE, state.is_https());
    let csrf_ok = match (csrf_cookie, form.get("csrf_token")) {
        (Some(cookie), Some(token)) => csrf_token_matches(&state.csrf_key, cookie, token),
        _ => false,
    };
    if !csrf_ok {
        return Err(PageError::FormExpired { flow: Flow::SignIn, retry: None });
    }
    let browser = csrf_cookie.unwrap_or_default();
    let pending = form.get("pending").unwrap_or("");
    let choice = match form.get("action") {
        Some("cancel") => Choice::Cancel,
        _ => Choice::End(form.get("end").unwrap_or("")),
    };
    let session_cookie = cookie(headers, SESSION_COOKIE, state.is_https());
    let chosen = signin::choose(state, pending, browser, choice, session_cookie, now).await.map_err(failed)?;
    match chosen {
        Chosen::SignedIn { cookie_value, max_age, resume } => {
            // Signed in already: no check here may lose the new session.
            let next = match resume.strip_prefix(super::device::DEVICE_RESUME) {
                Some(typed) => super::device::after_sign_in(typed),
                None => {
                    let query = query_after_sign_in(&resume)
                        .map_err(|e| PageError::BadRequest(Flow::SignIn, e.description.into_owned()))?;
                    format!("/authorize?{query}")
                }
            };
            signed_in(state, &next, &cookie_value, max_age)
        }
        Chosen::AtLimit { at_limit, resume } => {
            let error = match choice {
                Choice::End("") => "Choose a session to end.",
                _ => {
                    "That session is no longer there to end (it ended, or another sign-in took its place). \
                      Choose again."
                }
            };
            let resume = Resume::of(state, &resume)?;
            let page = match &resume {
                Resume::Device(_) => LimitPage { app: super::device::DEVICE_SIGN_IN, form_target: None },
                Resume::Authorize(target) => LimitPage::of(target),
            };
            session_limit_page(state, headers, &page, &at_limit, Some(error), StatusCode::CONFLICT, now)
        }
        // Back where the sign-in started, still signed out.
        Chosen::Cancelled { resume } => match Resume::of(state, &resume)? {
            Resume::Device(back) => redirect(StatusCode::SEE_OTHER, &back),
            Resume::Authorize(_) => redirect(StatusCode::SEE_OTHER, &format!("/authorize?{resume}")),
        },
        Chosen::Expired => Err(PageError::FormExpired { flow: Flow::SignIn, retry: None }),
    }
}

/// Where a pending sign-in started: an authorization request (its resume
/// is the request's query) or the device pages (`device::DEVICE_RESUME`).
enum Resume {
    Authorize(Target),
    /// The device page to go back to.
    Device(String),
}

impl Resume {
    fn of(state: &AppState, resume: &str) -> Result<Resume, PageError> {
        if let Some(typed) = resume.strip_prefix(super::device::DEVICE_RESUME) {
            return Ok(Resume::Device(super::device::after_sign_in(typed)));
        }
        let params = Params::parse(resume.as_bytes())
            .map_err(|e| PageError::BadRequest(Flow::SignIn, e.description.into_owned()))?;
        let target = Target::identify(&params, &state.clients).map_err(|m| PageError::BadRequest(Flow::SignIn, m))?;
        Ok(Resume::Authorize(target))
    }
}

/// What the "too many sessions" page says the sign-in goes on to, and the
/// origin its form may lead to (the client's, after an authorization
/// request: the choice ends in a redirect there).
pub(super) struct LimitPage<'a> {
    pub app: &'a str,
    pub form_target: Option<String>,
}

impl<'a> LimitPage<'a> {
    fn of(target: &'a Target) -> LimitPage<'a> {
        LimitPage { app: target.display_name(), form_target: pages::form_action_source(&target.redirect_uri) }
    }
}

/// The "too many sessions" page of a sign-in at the limit.
pub(super) fn session_limit_page(
    state: &AppState,
    headers: &HeaderMap,
    page: &LimitPage<'_>,
    at_limit: &AtLimit,
    error: Option<&str>,
    status: StatusCode,
    now: UnixTime,
) -> Result<Response, PageError> {
    // The sign-in form's CSRF check passed, so the browser holds a cookie.
    let csrf_cookie = cookie(headers, CSRF_COOKIE, state.is_https()).unwrap_or_default();
    let csrf_token = csrf_token(&state.csrf_key, csrf_cookie);
    let sessions: Vec<SessionChoice> = at_limit
        .live
        .iter()
        .map(|s| {
            let names: Vec<String> = s
                .families
                .keys()
                .map(|id| state.clients.get(id).and_then(|c| c.name.clone()).unwrap_or_else(|| id.clone()))
                .collect();
            SessionChoice {
                sid: s.sid.clone(),
                clients: if names.is_empty() { "Signed in, no application yet".to_owned() } else { names.join(", ") },
                device: super::console::view::device(s.user_agent.as_deref()),
                ip: s.ip.clone().unwrap_or_else(|| "unknown address".to_owned()),
                last_active: last_active(s.last_active, now),
            }
        })
        .collect();
    let html = pages::session_limit(&SessionLimitForm {
        app: page.app,
        max_sessions: at_limit.max_sessions,
        sessions: &sessions,
        pending: &at_limit.pending,
        csrf_token: &csrf_token,
        error,
    });
    // The choice may end in a redirect to the client: its origin may be a
    // form's target, as on the sign-in page.
    Ok(pages::respond(status, html, page.form_target.as_deref()))
}

/// "5 min ago (2026-12-06 15:40 UTC)".
fn last_active(at: UnixTime, now: UnixTime) -> String {
    let ago = now.as_secs().saturating_sub(at.as_secs());
    let when = i64::try_from(at.as_secs())
        .ok()
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default();
    let ago = match ago {
        0..60 => "just now".to_owned(),
        60..3600 => format!("{} min ago", ago / 60),
        3600..86_400 => format!("{} h ago", ago / 3600),
        _ => format!("{} d ago", ago / 86_400),
    };
    format!("{ago} ({when})")
}

/// "1 second", "300 seconds".
fn seconds(n: u64) -> String {
    if n == 1 { "1 second".to_owned() } else { format!("{n} seconds") }
}

/// A form body: `application/x-www-form-urlencoded`, at most 64 KiB, each
/// parameter at most once.
async fn read_form(headers: &HeaderMap, body: Body) -> Result<Params, PageError> {
    let text = read_form_text(headers, body).await?;
    Params::parse(text.as_bytes()).map_err(|e| PageError::BadRequest(Flow::SignIn, e.description.into_owned()))
}

/// The raw text of a form body (it is ASCII when well formed).
async fn read_form_text(headers: &HeaderMap, body: Body) -> Result<String, PageError> {
    let bytes = read_page_form(headers, body, Flow::SignIn).await?;
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        PageError::BadRequest(Flow::SignIn, "The form is not valid application/x-www-form-urlencoded text.".to_owned())
    })
}

/// What the sign-in form shows besides the application.
struct FormState<'a> {
    username: &'a str,
    remember_me: bool,
    error: Option<&'a str>,
    return_to: &'a str,
}

/// The sign-in page for `target`, with a CSRF token bound to this
/// browser's `tenure_csrf` cookie (set here unless a valid one exists).
fn sign_in_page(
    state: &AppState,
    headers: &HeaderMap,
    target: &Target,
    form: &FormState<'_>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let existing = cookie(headers, CSRF_COOKIE, state.is_https()).filter(|c| is_csrf_cookie(c));
    let (csrf_cookie, fresh) = match existing {
        Some(c) => (c.to_owned(), false),
        None => (new_csrf_cookie().map_err(|_| internal("drawing a CSRF cookie", "no randomness"))?, true),
    };
    let csrf_token = csrf_token(&state.csrf_key, &csrf_cookie);
    let html = pages::sign_in(&SignInForm {
        app: target.display_name(),
        username: form.username,
        remember_me: form.remember_me,
        error: form.error,
        csrf_token: &csrf_token,
        return_to: form.return_to,
        action: "/login",
    });
    let form_target = pages::form_action_source(&target.redirect_uri);
    let mut response = pages::respond(status, html, form_target.as_deref());
    if fresh {
        let set_cookie = cookie_header(CSRF_COOKIE, &csrf_cookie, state.is_https(), None)?;
        response.headers_mut().append(header::SET_COOKIE, set_cookie);
    }
    Ok(response)
}

/// A `Set-Cookie` value (see `cookies::set_cookie`).
fn cookie_header(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> Result<HeaderValue, PageError> {
    set_cookie(name, value, secure, max_age).map_err(|e| internal("building a cookie", e))
}

/// A redirect that no cache keeps (it may carry a code).
fn redirect(status: StatusCode, location: &str) -> Result<Response, PageError> {
    let location = HeaderValue::from_str(location).map_err(|e| internal("building a redirect", e))?;
    let mut response = status.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, location);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    Ok(response)
}

/// Log an internal failure (never a code, cookie or password) and answer 500.
fn internal(context: &'static str, err: impl std::fmt::Display) -> PageError {
    pages::internal(Flow::SignIn, context, err)
}

/// The sign-in use cases fail only internally (logged where it happened),
/// or because the database does not answer (a 503 page).
fn failed(e: ServiceError) -> PageError {
    pages::failed(Flow::SignIn, &e)
}
