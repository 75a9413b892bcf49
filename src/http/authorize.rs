//! `GET /authorize` and `POST /login`: the HTTP side of the authorization
//! code flow (RFC 6749 4.1; OIDC Core 3.1.2; RFC 7636; RFC 9207). The rules
//! live in [`crate::oauth::authorize`]; this file reads cookies, the store and
//! the form, and turns outcomes into redirects and pages.
//!
//! - The user session is carried by the `tenure_session` cookie (SPEC 2);
//!   a refresh of any of its families counts as activity (SPEC 3).
//! - The sign-in form is protected by a CSRF token: HMAC-SHA256 of the
//!   `tenure_csrf` cookie under a server key, checked in constant time.
//! - Sign-in attempts are counted before the password is checked, per
//!   username and address and per address (SPEC 7), with a lock that
//!   doubles; failures are audited in aggregate; the password check costs
//!   the same for unknown usernames and runs within the hashing bound.
//! - A new sign-in ends the browser's previous session and renews the CSRF
//!   cookie.
//! - After a sign-in, the only place the browser is sent is our own
//!   `/authorize` with the original request (no open redirect, RFC 9700 4.11).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::cookies::{cookie, csrf_token, csrf_token_matches, is_csrf_cookie, new_csrf_cookie, set_cookie};
use super::form::{BODY_LIMIT, client_addr};
use super::pages::{self, SignInForm};
use crate::audit::{AuditEvent, EventKind, FailedAttempt, escape_control};
use crate::clock::UnixTime;
use crate::oauth::authorize::{AuthorizationRequest, AuthorizeError, Step, Target, query_after_sign_in};
use crate::oauth::params::Params;
use crate::oauth::throttle::{SharedCounts, ThrottleKey};
use crate::revocation::Revocation;
use crate::secret::{Secret, VerifyError};
use crate::session::code::{AuthCode, new_code};
use crate::session::user_session::{UserSession, parse_cookie};
use crate::store::Store;

pub const SESSION_COOKIE: &str = "tenure_session";
pub const CSRF_COOKIE: &str = "tenure_csrf";

const WRONG_CREDENTIALS: &str = "Wrong username or password.";
const FORM_EXPIRED: &str = "This sign-in form has expired. Go back and try again.";
const SERVER_BUSY: &str = "The server is busy signing in other people. Try again in a moment.";
/// Why a browser's previous session ended when it signed in again.
pub const REASON_REPLACED: &str = "replaced_by_new_sign_in";

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
        Err(AuthorizeError::ShowPage(message)) => return Err(PageError::BadRequest(message)),
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
    let Some((sid, secret)) = cookie(headers, SESSION_COOKIE, state.is_https()).and_then(parse_cookie) else {
        return Ok(None);
    };
    let Some(session) = state.store.session(sid).await.map_err(|e| internal("reading a user session", e))? else {
        return Ok(None);
    };
    let user_exists = state.user(&session.username).await.map_err(|e| internal("reading a user", e))?.is_some();
    if !session.cookie_matches(secret) || !user_exists {
        return Ok(None);
    }
    // SPEC 3: a refresh of any family of the session is activity too; the
    // store records it on the session itself, so this is one read whatever
    // the number of families.
    Ok(session.is_alive(&state.history(), session.last_active, now).then_some(session))
}

/// Store a code for the session's user (durable before the redirect) and
/// record the single sign-on as session activity.
async fn issue_code(
    state: &AppState,
    request: &AuthorizationRequest,
    session: UserSession,
    now: UnixTime,
) -> Result<Response, PageError> {
    let (code, key) = new_code().map_err(|_| internal("drawing an authorization code", "no randomness"))?;
    let record = AuthCode {
        client_id: request.target.client.id.clone(),
        redirect_uri: request.target.redirect_uri.clone(),
        redirect_uri_given: request.target.redirect_uri_given,
        scope: request.scope.to_string(),
        nonce: request.nonce.clone(),
        code_challenge: request.code_challenge.clone(),
        sid: session.sid.clone(),
        username: session.username.clone(),
        auth_time: session.signed_in,
        remember_me: session.remember_me,
        issued_at: now,
        redeemed_family: None,
        dpop_jkt: request.dpop_jkt.clone(),
    };
    state.store.put_code(&key, &record).await.map_err(|e| internal("storing an authorization code", e))?;
    touch_session(state, &session.sid, now).await?;
    tracing::info!(client_id = %record.client_id, sid = %session.sid, "authorization code issued");
    redirect(StatusCode::FOUND, &request.code_location(&code, &state.issuer))
}

/// Record single sign-on as activity of session `sid` (SPEC 3), atomically:
/// a revoked session is left alone, so a concurrent revocation always wins.
async fn touch_session(state: &AppState, sid: &str, now: UnixTime) -> Result<(), PageError> {
    state.store.touch_session(sid, now).await.map(|_| ()).map_err(|e| internal("recording session activity", e))
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
        return Err(PageError::FormExpired { retry });
    }

    // Where to continue: our own /authorize with the original request.
    let params = Params::parse(return_to.as_bytes()).map_err(|e| PageError::BadRequest(e.description.into_owned()))?;
    let target = Target::identify(&params, &state.clients).map_err(PageError::BadRequest)?;
    let next = query_after_sign_in(return_to).map_err(|e| PageError::BadRequest(e.description.into_owned()))?;
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
    if username.is_empty() || password.is_empty() {
        return again(StatusCode::BAD_REQUEST, "Enter your username and password.");
    }

    // SPEC 7: counted before the password is checked, per (username,
    // address) and per address, so neither concurrency nor spraying many
    // usernames gets more guesses than the limits.
    let name: String = username.chars().take(64).collect();
    let throttles = &state.sign_in_throttles;
    let (account_key, address_key) =
        (ThrottleKey::of(&["user", username, &remote]), ThrottleKey::of(&["address", &remote]));
    // With several replicas the failures are counted in the store too: take
    // in what the others counted (one read each; nothing is written unless
    // the attempt fails, or succeeds after failures on record).
    let shared: &dyn SharedCounts = &state.store;
    let account_on_record = throttles.user_address.consult(shared, account_key, now).await;
    throttles.address.consult(shared, address_key, now).await;
    let account_slot = match throttles.user_address.reserve(account_key, now) {
        Ok(slot) => slot,
        Err(refusal) => {
            let wait = refusal.retry_after_secs();
            tracing::warn!(username = %escape_control(&name), %remote, retry_after = wait, "sign-in throttled");
            record_failure(state, Some(&name), &remote, FailedAttempt::Throttled, now).await?;
            let message = format!(
                "Too many failed sign-in attempts for this account from your address. Try again in {}.",
                seconds(wait)
            );
            return again_later(StatusCode::TOO_MANY_REQUESTS, &message, wait);
        }
    };
    let address_slot = match throttles.address.reserve(address_key, now) {
        Ok(slot) => slot,
        Err(refusal) => {
            account_slot.released();
            let wait = refusal.retry_after_secs();
            tracing::warn!(%remote, retry_after = wait, "sign-in throttled for the address");
            record_failure(state, None, &remote, FailedAttempt::Throttled, now).await?;
            let message =
                format!("Too many failed sign-in attempts from your address. Try again in {}.", seconds(wait));
            return again_later(StatusCode::TOO_MANY_REQUESTS, &message, wait);
        }
    };
    match check_password(state, username, password).await? {
        PasswordCheck::Busy => {
            // Nothing was decided: both slots go back (dropped).
            return again_later(StatusCode::SERVICE_UNAVAILABLE, SERVER_BUSY, 1);
        }
        PasswordCheck::Wrong => {
            account_slot.failed(now);
            address_slot.failed(now);
            throttles.user_address.share_failure(shared, account_key, now).await;
            throttles.address.share_failure(shared, address_key, now).await;
            record_failure(state, Some(&name), &remote, FailedAttempt::WrongPassword, now).await?;
            return again(StatusCode::UNAUTHORIZED, WRONG_CREDENTIALS);
        }
        PasswordCheck::Right => {
            account_slot.succeeded();
            if account_on_record {
                shared.clear(account_key).await;
            }
            // A success does not wipe the address's count (one valid
            // account must not reset a spray).
            address_slot.released();
        }
    }

    // A sign-in in a browser that still carries another live session ends
    // that session: one browser, one session.
    let previous = live_session(state, headers, now).await?;
    let user_agent =
        headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|ua| ua.chars().take(512).collect());
    let cookie = start_session(state, username, remember_me, user_agent, remote, now).await?;
    if let Some(previous) = previous {
        let revocation = Revocation { store: &state.store, clients: &state.clients, now };
        revocation
            .session(&previous.sid, username, REASON_REPLACED)
            .await
            .map_err(|e| internal("ending the browser's previous session", e))?;
    }
    let mut response = redirect(StatusCode::SEE_OTHER, &next)?;
    response.headers_mut().append(header::SET_COOKIE, cookie);
    // A fresh CSRF cookie: nothing bound to the signed-out state stays valid.
    let csrf = new_csrf_cookie().map_err(|_| internal("drawing a CSRF cookie", "no randomness"))?;
    response.headers_mut().append(header::SET_COOKIE, cookie_header(CSRF_COOKIE, &csrf, state.is_https(), None)?);
    Ok(response)
}

/// "1 second", "300 seconds".
fn seconds(n: u64) -> String {
    if n == 1 { "1 second".to_owned() } else { format!("{n} seconds") }
}

/// Count a failed sign-in in its aggregated audit record.
async fn record_failure(
    state: &AppState,
    username: Option<&str>,
    remote: &str,
    attempt: FailedAttempt,
    now: UnixTime,
) -> Result<(), PageError> {
    state
        .failed_sign_ins
        .record(&state.store, username, remote, attempt, now)
        .await
        .map_err(|e| internal("auditing a failed sign-in", e))
}

/// A new user session, durable, and the `Set-Cookie` that carries it. A
/// "Remember me" cookie outlives the browser, up to the remember-me absolute
/// limit; otherwise it ends with the browser session.
async fn start_session(
    state: &AppState,
    username: &str,
    remember_me: bool,
    user_agent: Option<String>,
    remote: String,
    now: UnixTime,
) -> Result<HeaderValue, PageError> {
    let (session, cookie_value) = UserSession::start(username, remember_me, user_agent, Some(remote), now)
        .map_err(|_| internal("starting a user session", "no randomness"))?;
    state
        .store
        .put_session(&session, state.keep_until(now))
        .await
        .map_err(|e| internal("storing a new user session", e))?;
    let event = AuditEvent::new(now, EventKind::SignIn, session.username.clone(), format!("session:{}", session.sid))
        .details(serde_json::json!({ "remember_me": remember_me, "ip": session.ip, "user_agent": session.user_agent }));
    event.log();
    state.store.append_event(&event).await.map_err(|e| internal("auditing a sign-in", e))?;
    let max_age = remember_me.then(|| state.history().current().remember_me_max_lifetime.as_secs());
    cookie_header(SESSION_COOKIE, &cookie_value.0, state.is_https(), max_age)
}

/// The answer of a password check.
enum PasswordCheck {
    Right,
    Wrong,
    /// Every hashing slot stayed busy: nothing was checked.
    Busy,
}

/// Argon2 off the async executor, within the hashing bound. An unknown
/// username is checked against a dummy hash so the answer takes as long as
/// for a known one.
async fn check_password(state: &AppState, username: &str, password: &str) -> Result<PasswordCheck, PageError> {
    let user = state.user(username).await.map_err(|e| internal("reading a user", e))?;
    let (hash, known) = match user.as_ref() {
        Some(user) => (&user.password_hash, true),
        None => (&state.dummy_password_hash, false),
    };
    match state.hashing.verify(hash, &Secret::new(password)).await {
        Ok(matches) if known && matches => Ok(PasswordCheck::Right),
        Ok(_) => Ok(PasswordCheck::Wrong),
        Err(VerifyError::Busy) => Ok(PasswordCheck::Busy),
        Err(e @ VerifyError::Aborted) => Err(internal("verifying a password", e)),
    }
}

/// A form body: `application/x-www-form-urlencoded`, at most 64 KiB, each
/// parameter at most once.
async fn read_form(headers: &HeaderMap, body: Body) -> Result<Params, PageError> {
    let text = read_form_text(headers, body).await?;
    Params::parse(text.as_bytes()).map_err(|e| PageError::BadRequest(e.description.into_owned()))
}

/// The raw text of a form body (it is ASCII when well formed).
async fn read_form_text(headers: &HeaderMap, body: Body) -> Result<String, PageError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(PageError::BadRequest("The form must be sent as application/x-www-form-urlencoded.".to_owned()));
    }
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT) {
        return Err(PageError::TooLarge);
    }
    let bytes = axum::body::to_bytes(body, BODY_LIMIT).await.map_err(|_| PageError::TooLarge)?;
    String::from_utf8(bytes.to_vec())
        .map_err(|_| PageError::BadRequest("The form is not valid application/x-www-form-urlencoded text.".to_owned()))
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

/// Why a request ends on an error page rather than at the client.
#[derive(Debug)]
enum PageError {
    /// 400: the request cannot be trusted or understood; the message says why.
    BadRequest(String),
    /// 400: the CSRF token is missing or does not match the cookie.
    FormExpired { retry: Option<String> },
    /// 413: the form exceeds 64 KiB.
    TooLarge,
    /// 500: details are in the log only.
    Internal,
}

/// Log an internal failure (never a code, cookie or password) and answer 500.
fn internal(context: &'static str, err: impl std::fmt::Display) -> PageError {
    tracing::error!(%context, error = %err, "internal error");
    PageError::Internal
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, html) = match self {
            PageError::BadRequest(message) => {
                (StatusCode::BAD_REQUEST, pages::message("This sign-in request cannot be completed", &message, None))
            }
            PageError::FormExpired { retry } => (
                StatusCode::BAD_REQUEST,
                pages::message("Sign in", FORM_EXPIRED, retry.as_deref().map(|href| (href, "Try again"))),
            ),
            PageError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                pages::message(
                    "This sign-in request cannot be completed",
                    &format!("The form is larger than {} KiB.", BODY_LIMIT / 1024),
                    None,
                ),
            ),
            PageError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                pages::message(
                    "Something went wrong",
                    "The server could not complete your sign-in. Please try again in a moment.",
                    None,
                ),
            ),
        };
        pages::respond(status, html, None)
    }
}
