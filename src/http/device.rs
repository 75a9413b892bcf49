//! The device authorization grant's HTTP side (RFC 8628, SPEC 15):
//! `POST /device_authorization` for the tool, and the pages at `/device`
//! for the person.
//!
//! The pages work without script, like the sign-in page:
//! - `GET /device[?user_code=...]`: signed in (the `tenure_session` cookie
//!   counts), the form to enter the code, prefilled from
//!   `verification_uri_complete`; otherwise the sign-in form, posting to
//!   `POST /device/login`, which comes back here. A code in the link is
//!   never approved by the link alone.
//! - `POST /device`: look the code up (wrong codes throttled, see
//!   `service::device::enter`) and show the client's name and the scopes
//!   with Approve and Deny.
//! - `POST /device/decision`: the answer.
//!
//! Every form carries the CSRF token of the sign-in form (the HMAC of the
//! `tenure_csrf` cookie).

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::authorize::{CSRF_COOKIE, SESSION_COOKIE};
use super::cookies::{cookie, csrf_token, csrf_token_matches, is_csrf_cookie, new_csrf_cookie, set_cookie};
use super::form::{OAuthForm, client_addr, read_page_form};
use super::pages::{self, Flow, PageError, SignInForm, escape};
use super::token::no_store;
use crate::clock::UnixTime;
use crate::oauth::params::Params;
use crate::service::device::{Closed, Decision, DeviceView, Found};
use crate::service::signin::{self, Ask, Refusal, SignIn, SignedIn};
use crate::service::{self, AppState, ClientRequest, ServiceError};
use crate::session::device::UserCode;
use crate::session::user_session::UserSession;

/// `POST /device_authorization` (RFC 8628 3.1): the device code, the user
/// code and where the person goes; never cached.
pub async fn device_authorization(State(state): State<AppState>, form: Result<OAuthForm, ServiceError>) -> Response {
    let now = state.now();
    let form = match form {
        Ok(form) => form,
        Err(e) => return e.into_response(),
    };
    let request =
        ClientRequest { params: &form.params, authorization: form.authorization.as_deref(), remote: &form.remote };
    match service::device::authorize(&state, request, now).await {
        Ok(body) => no_store(Json(body).into_response()),
        Err(e) => e.into_response(),
    }
}

/// `GET /device`: the code form (signed in) or the sign-in form.
pub async fn page(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let now = state.now();
    let typed = Params::parse(uri.query().unwrap_or("").as_bytes())
        .ok()
        .and_then(|p| p.get("user_code").map(|c| c.chars().take(32).collect::<String>()))
        .unwrap_or_default();
    let outcome = async {
        match live_session(&state, &headers, now).await? {
            Some(session) => code_page(&state, &headers, &session, &typed, None, StatusCode::OK),
            None => sign_in_page(&state, &headers, &typed, "", None, StatusCode::OK),
        }
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /device`: look the code up; the confirmation page, or why not.
pub async fn enter(State(state): State<AppState>, request: Request) -> Response {
    let now = state.now();
    answer(&state, request, Step::Enter, now).await.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /device/decision`: approve or deny.
pub async fn decision(State(state): State<AppState>, request: Request) -> Response {
    let now = state.now();
    answer(&state, request, Step::Decide, now).await.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /device/login`: sign in (the sign-in form's checks and throttle),
/// then back to the code form.
pub async fn login(State(state): State<AppState>, request: Request) -> Response {
    let now = state.now();
    sign_in(&state, request, now).await.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Enter,
    Decide,
}

async fn answer(state: &AppState, request: Request, step: Step, now: UnixTime) -> Result<Response, PageError> {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let remote = client_addr(&state.config.trusted_proxies, headers, &parts.extensions);
    let form = read_form(headers, body).await?;
    check_csrf(state, headers, &form)?;
    let typed = form.get("user_code").unwrap_or("");
    let Some(session) = live_session(state, headers, now).await? else {
        // Signed out meanwhile: sign in again, then back to the code.
        return sign_in_page(state, headers, typed, "", None, StatusCode::OK);
    };
    let decision = match (step, form.get("action")) {
        (Step::Enter, _) => Decision::Look,
        (Step::Decide, Some("approve")) => Decision::Approve,
        (Step::Decide, Some("deny")) => Decision::Deny,
        (Step::Decide, _) => {
            return Err(PageError::BadRequest(Flow::SignIn, "Choose Approve or Deny.".to_owned()));
        }
    };
    let found = service::device::enter(state, typed, decision, &session, &remote, now).await.map_err(|_| failed())?;
    match found {
        Found::Open(view) if step == Step::Enter => confirm_page(state, headers, &session, &view),
        // A decision on a code still open cannot happen (the store answered
        // it); show the code form again.
        Found::Open(_) => code_page(state, headers, &session, typed, None, StatusCode::CONFLICT),
        Found::Answered { view, approved } => Ok(answered_page(&view, approved)),
        Found::Closed(why) => Ok(closed_page(why)),
        Found::Unknown => code_page(
            state,
            headers,
            &session,
            typed,
            Some("That code is not valid. Check the code shown on your device and try again."),
            StatusCode::BAD_REQUEST,
        ),
        Found::Throttled { retry_after_secs } => {
            let message = format!(
                "Too many wrong codes were entered from this session or your address. Try again in {}.",
                seconds(retry_after_secs)
            );
            let html = pages::message("Too many attempts", &message, Some(("/device", "Enter a code")));
            let mut response = pages::respond(StatusCode::TOO_MANY_REQUESTS, html, None);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            Ok(response)
        }
    }
}

async fn sign_in(state: &AppState, request: Request, now: UnixTime) -> Result<Response, PageError> {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let remote = client_addr(&state.config.trusted_proxies, headers, &parts.extensions);
    let form = read_form(headers, body).await?;
    check_csrf(state, headers, &form)?;
    let typed = form.get("return_to").unwrap_or("");
    let username = form.get("username").unwrap_or("");
    let again = |status, error: &str| sign_in_page(state, headers, typed, username, Some(error), status);
    let user_agent =
        headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|ua| ua.chars().take(512).collect());
    // The CSRF check above proved the browser holds this cookie.
    let browser = cookie(headers, CSRF_COOKIE, state.is_https()).unwrap_or_default();
    let resume = format!("{DEVICE_RESUME}{typed}");
    let sign_in = SignIn {
        username,
        password: form.get("password").unwrap_or(""),
        remember_me: form.get("remember_me") == Some("on"),
        remote: &remote,
        user_agent,
        session_cookie: cookie(headers, SESSION_COOKIE, state.is_https()),
        // Under a session limit that asks, the "too many sessions" page
        // asks, then comes back here ([`resume_after_sign_in`]).
        ask: Some(Ask { resume: &resume, browser }),
    };
    let (cookie_value, max_age) = match signin::sign_in(state, sign_in, now).await.map_err(|_| failed())? {
        SignedIn::Session { cookie_value, max_age } => (cookie_value, max_age),
        SignedIn::AtLimit(at_limit) => {
            let limit = super::authorize::LimitPage { app: DEVICE_SIGN_IN, form_target: None };
            return super::authorize::session_limit_page(state, headers, &limit, &at_limit, None, StatusCode::OK, now);
        }
        SignedIn::Refused(Refusal::MissingCredentials) => {
            return again(StatusCode::BAD_REQUEST, "Enter your username and password.");
        }
        SignedIn::Refused(
            Refusal::AccountThrottled { retry_after_secs } | Refusal::AddressThrottled { retry_after_secs },
        ) => {
            let message = format!("Too many failed sign-in attempts. Try again in {}.", seconds(retry_after_secs));
            let mut response = again(StatusCode::TOO_MANY_REQUESTS, &message)?;
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            return Ok(response);
        }
        SignedIn::Refused(Refusal::Busy) => {
            return again(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is busy signing in other people. Try again in a moment.",
            );
        }
        SignedIn::Refused(Refusal::WrongCredentials) => {
            return again(StatusCode::UNAUTHORIZED, "Wrong username or password.");
        }
    };
    let mut response = redirect(&after_sign_in(typed))?;
    let https = state.is_https();
    response.headers_mut().append(header::SET_COOKIE, cookie_header(SESSION_COOKIE, &cookie_value, https, max_age)?);
    // A fresh CSRF cookie: nothing bound to the signed-out state stays valid.
    let csrf = new_csrf_cookie().map_err(|_| internal("drawing a CSRF cookie", "no randomness"))?;
    response.headers_mut().append(header::SET_COOKIE, cookie_header(CSRF_COOKIE, &csrf, https, None)?);
    Ok(response)
}

async fn live_session(state: &AppState, headers: &HeaderMap, now: UnixTime) -> Result<Option<UserSession>, PageError> {
    signin::live_session(state, cookie(headers, SESSION_COOKIE, state.is_https()), now).await.map_err(|_| failed())
}

/// The form must come from a page we rendered for this browser.
/// How a pending sign-in at the session limit (`on_session_limit = "ask"`)
/// says it started on the device pages: this prefix, then the code typed so
/// far. An authorization request's resume is a query string, which never
/// starts so.
pub const DEVICE_RESUME: &str = "device:";

/// What the "too many sessions" page names as the place the sign-in goes on to.
pub const DEVICE_SIGN_IN: &str = "the device sign-in";

/// Where a sign-in started on the device pages goes on: the code form, with
/// the code typed so far when it is one (no other text goes into the
/// redirect).
pub fn after_sign_in(typed: &str) -> String {
    match UserCode::parse(typed) {
        Some(code) => format!("/device?user_code={}", code.display()),
        None => "/device".to_owned(),
    }
}

fn check_csrf(state: &AppState, headers: &HeaderMap, form: &Params) -> Result<(), PageError> {
    let ok = match (cookie(headers, CSRF_COOKIE, state.is_https()), form.get("csrf_token")) {
        (Some(cookie), Some(token)) => csrf_token_matches(&state.csrf_key, cookie, token),
        _ => false,
    };
    if ok { Ok(()) } else { Err(PageError::FormExpired { flow: Flow::SignIn, retry: Some("/device".to_owned()) }) }
}

/// This browser's CSRF cookie and the token for it; `true` when the cookie
/// is new and must be set.
fn csrf(state: &AppState, headers: &HeaderMap) -> Result<(String, String, bool), PageError> {
    let existing = cookie(headers, CSRF_COOKIE, state.is_https()).filter(|c| is_csrf_cookie(c));
    let (cookie, fresh) = match existing {
        Some(c) => (c.to_owned(), false),
        None => (new_csrf_cookie().map_err(|_| internal("drawing a CSRF cookie", "no randomness"))?, true),
    };
    let token = csrf_token(&state.csrf_key, &cookie);
    Ok((cookie, token, fresh))
}

/// `html` as a page, setting the CSRF cookie when it is new.
fn with_csrf(
    state: &AppState,
    status: StatusCode,
    html: String,
    cookie: &str,
    fresh: bool,
) -> Result<Response, PageError> {
    let mut response = pages::respond(status, html, None);
    if fresh {
        let value = cookie_header(CSRF_COOKIE, cookie, state.is_https(), None)?;
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}

fn sign_in_page(
    state: &AppState,
    headers: &HeaderMap,
    typed: &str,
    username: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let (cookie, token, fresh) = csrf(state, headers)?;
    let html = pages::sign_in(&SignInForm {
        app: "your device",
        username,
        remember_me: false,
        error,
        csrf_token: &token,
        return_to: typed,
        action: "/device/login",
    });
    with_csrf(state, status, html, &cookie, fresh)
}

/// The form to enter a user code (prefilled with `typed`).
fn code_page(
    state: &AppState,
    headers: &HeaderMap,
    session: &UserSession,
    typed: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let (cookie, token, fresh) = csrf(state, headers)?;
    let alert = match error {
        Some(message) => format!(r#"<p class="alert" id="form-error" role="alert">{}</p>"#, escape(message)),
        None => String::new(),
    };
    let described_by = if error.is_some() { r#" aria-describedby="form-error""# } else { "" };
    let body = format!(
        r#"<h1>Connect a device</h1>
<p class="lead">Enter the code shown on your device or in your terminal.</p>
{alert}<form method="post" action="/device"{described_by}>
<input type="hidden" name="csrf_token" value="{token}">
<div class="field">
<label for="user_code">Code</label>
<input id="user_code" name="user_code" type="text" class="code-input" value="{typed}" placeholder="XXXX-XXXX" autocomplete="off" autocapitalize="characters" spellcheck="false" maxlength="16" required autofocus>
</div>
<button type="submit">Continue</button>
</form>
<p class="note">Signed in as <strong>{username}</strong>.</p>"#,
        token = escape(&token),
        typed = escape(typed),
        username = escape(&session.username),
    );
    with_csrf(state, status, pages::document("Connect a device", &body), &cookie, fresh)
}

/// The client's name and the scopes, with Approve and Deny.
fn confirm_page(
    state: &AppState,
    headers: &HeaderMap,
    session: &UserSession,
    view: &DeviceView,
) -> Result<Response, PageError> {
    let (cookie, token, fresh) = csrf(state, headers)?;
    let scopes: String = view.scopes.iter().map(|s| format!("<li>{}</li>\n", scope_text(s))).collect();
    let body = format!(
        r#"<h1>Allow access?</h1>
<p class="lead"><strong>{client}</strong> asks to sign in as <strong>{username}</strong>.</p>
<p class="note">Check that this code is the one shown on your device:</p>
<p class="code" aria-label="Code">{code}</p>
<p class="note">It will be allowed to:</p>
<ul class="scopes">
{scopes}</ul>
<form method="post" action="/device/decision">
<input type="hidden" name="csrf_token" value="{token}">
<input type="hidden" name="user_code" value="{code}">
<button type="submit" name="action" value="approve">Approve</button>
<button type="submit" name="action" value="deny" class="secondary">Deny</button>
</form>
<p class="note">Approve only if you started this yourself. Nobody from {client} will ask you for this code.</p>"#,
        client = escape(&view.client_name),
        username = escape(&session.username),
        code = escape(&view.user_code),
        token = escape(&token),
    );
    with_csrf(state, StatusCode::OK, pages::document("Allow access?", &body), &cookie, fresh)
}

/// What a scope lets the client do, in words (its name for the others).
fn scope_text(scope: &str) -> String {
    match scope {
        "openid" => "Know who you are".to_owned(),
        "profile" => "See your name and username".to_owned(),
        "email" => "See your email address".to_owned(),
        other => format!("Use the scope <code>{}</code>", escape(other)),
    }
}

fn answered_page(view: &DeviceView, approved: bool) -> Response {
    let (heading, message) = if approved {
        (
            "Device connected",
            format!("{} is signed in. You can close this window and return to your device.", view.client_name),
        )
    } else {
        ("Request denied", format!("{} was not allowed to sign in. You can close this window.", view.client_name))
    };
    let body = format!(
        r#"<h1>{heading}</h1>
<p class="done" role="status">{message}</p>"#,
        message = escape(&message),
    );
    pages::respond(StatusCode::OK, pages::document(heading, &body), None)
}

fn closed_page(why: Closed) -> Response {
    let (heading, message) = match why {
        Closed::Expired => ("Code expired", "This code has expired. Start again on your device to get a new code."),
        Closed::Used => (
            "Code already used",
            "This code has already been used to sign in. Start again on your device if you need to.",
        ),
        Closed::Answered => (
            "Code already answered",
            "This code was already approved or denied. Start again on your device if you need to.",
        ),
    };
    let html = pages::message(heading, message, Some(("/device", "Enter another code")));
    pages::respond(StatusCode::GONE, html, None)
}

/// "1 second", "90 seconds", "5 minutes" (rounded up).
fn seconds(n: u64) -> String {
    match n {
        1 => "1 second".to_owned(),
        0..120 => format!("{n} seconds"),
        _ => format!("{} minutes", n.div_ceil(60)),
    }
}

async fn read_form(headers: &HeaderMap, body: Body) -> Result<Params, PageError> {
    let bytes = read_page_form(headers, body, Flow::SignIn).await?;
    Params::parse(&bytes).map_err(|e| PageError::BadRequest(Flow::SignIn, e.description.into_owned()))
}

fn cookie_header(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> Result<HeaderValue, PageError> {
    set_cookie(name, value, secure, max_age).map_err(|e| internal("building a cookie", e))
}

fn redirect(location: &str) -> Result<Response, PageError> {
    let location = HeaderValue::from_str(location).map_err(|e| internal("building a redirect", e))?;
    let mut response = StatusCode::SEE_OTHER.into_response();
    response.headers_mut().insert(header::LOCATION, location);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

fn internal(context: &'static str, err: impl std::fmt::Display) -> PageError {
    pages::internal(Flow::SignIn, context, err)
}

/// The use cases fail only internally (logged where it happened).
fn failed() -> PageError {
    PageError::Internal(Flow::SignIn)
}
