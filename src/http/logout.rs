//! `GET|POST /logout`: OpenID Connect RP-Initiated Logout 1.0 (SPEC 4).
//!
//! - `id_token_hint` (section 2) must be an ID token tenure issued: signed by
//!   a key it still publishes, with its `iss`. An expired one is accepted
//!   ("the OP SHOULD accept ID Tokens ... even when the exp time has
//!   passed").
//! - `client_id` and the hint's `aud` name the application; when both are
//!   given they must agree.
//! - `post_logout_redirect_uri` (sections 2, 3) must exactly match one the
//!   application registered; `state` is echoed on it. Until a redirect is
//!   known to be valid, every error is a page, never a redirect (no open
//!   redirector).
//! - `ui_locales` and `logout_hint` are accepted and ignored.
//! - Logout CSRF (section 6): without a valid hint naming the browser's
//!   session, the user confirms on a page whose form carries a CSRF token
//!   (HMAC of the `tenure_csrf` cookie, as on the sign-in page). Without the
//!   session cookie (a cross-site POST does not carry it) the user confirms
//!   too: a hint alone never ends a session, since an ID token is not a
//!   credential (it leaks, and an expired one is accepted). Only the session
//!   of the browser that confirms ends.
//! - Ending the session revokes it and every family in it, and queues the
//!   back-channel logouts ([`Revocation::session`]); the `tenure_session`
//!   cookie is cleared.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use super::authorize::{CSRF_COOKIE, SESSION_COOKIE};
use super::cookies::{cookie, csrf_token, csrf_token_matches, is_csrf_cookie, new_csrf_cookie, set_cookie};
use super::form::read_page_form;
use super::pages::{self, Flow, PageError};
use crate::clock::UnixTime;
use crate::oauth::client::Client;
use crate::oauth::client_auth::ClientRegistry;
use crate::oauth::params::Params;
use crate::service::{self, AppState};
use crate::session::user_session::UserSession;
use crate::token::claims::IdClaims;
use crate::token::jwt::{self, TokenType, VerifyError};
use crate::token::keys::KeySet;

/// `GET /logout`: the request in the query string.
pub async fn get(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let now = state.now();
    let outcome = match Params::parse(uri.query().unwrap_or("").as_bytes()) {
        Ok(params) => end_session(&state, &headers, &params, Method::Get, now).await,
        Err(e) => Err(PageError::BadRequest(Flow::SignOut, e.description.into_owned())),
    };
    outcome.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /logout`: the request as a form body (section 2: the OP supports
/// both), or the user's answer on the confirmation page.
pub async fn post(State(state): State<AppState>, request: Request) -> Response {
    let now = state.now();
    let (parts, body) = request.into_parts();
    let outcome = match read_form(&parts.headers, body).await {
        Ok(params) => end_session(&state, &parts.headers, &params, Method::Post, now).await,
        Err(e) => Err(e),
    };
    outcome.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Get,
    Post,
}

async fn end_session(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    method: Method,
    now: UnixTime,
) -> Result<Response, PageError> {
    let keys = state.keys();
    let request = LogoutRequest::parse(params, &state.clients, |token| {
        verify_hint(token, &keys, state.key_retention(), state.max_token_lifetime(), &state.issuer, now)
    })
    .map_err(|m| PageError::BadRequest(Flow::SignOut, m))?;

    // The confirmation form is the only request that carries a CSRF token.
    let confirmed = params.get("csrf_token").is_some();
    if confirmed {
        let csrf_ok = match (cookie(headers, CSRF_COOKIE, state.is_https()), params.get("csrf_token")) {
            (Some(cookie), Some(token)) => csrf_token_matches(&state.csrf_key, cookie, token),
            _ => false,
        };
        if !csrf_ok {
            return Err(PageError::FormExpired { flow: Flow::SignOut, retry: None });
        }
    }

    let browser = browser_session(state, headers).await?;
    let to_end = match (browser, &request.hint) {
        // Only the browser's own session ever ends, never one named by a
        // hint alone: an ID token is no credential (it leaks through logs and
        // referrers, and an expired one is accepted).
        (browser, _) if confirmed => browser,
        // The application names the browser's own session: no need to ask.
        (Some(session), Some(hint)) if session.sid == hint.sid => Some(session),
        // The request may not come from the user (logout CSRF): ask.
        (Some(_), _) => return confirmation_page(state, headers, &request, params),
        // No session cookie (a cross-site POST does not carry it): ask; the
        // answer is a same-site POST that carries it.
        (None, Some(_)) => return confirmation_page(state, headers, &request, params),
        (None, None) if method == Method::Post => return confirmation_page(state, headers, &request, params),
        (None, None) => None,
    };

    if let Some(session) = &to_end {
        state.revocation(now).session(&session.sid, &session.username, "logout").await.map_err(|e| {
            pages::failed(Flow::SignOut, &crate::service::ServiceError::store("ending a user session", e))
        })?;
        tracing::info!(
            username = %session.username,
            sid = %session.sid,
            client_id = request.client.as_ref().map_or("", |c| c.id.as_str()),
            "logout"
        );
    }

    let mut response = match &request.redirect {
        Some(location) => redirect(location)?,
        None => pages::respond(StatusCode::OK, signed_out_page(), None),
    };
    response.headers_mut().append(header::SET_COOKIE, clear_session_cookie(state.is_https())?);
    Ok(response)
}

/// A logout request whose parameters have been checked, before looking at
/// the browser.
struct LogoutRequest {
    /// The verified `id_token_hint`.
    hint: Option<IdClaims>,
    /// The application: `client_id`, else the hint's `aud`, when registered.
    client: Option<Arc<Client>>,
    /// Where to send the browser afterwards: a registered
    /// `post_logout_redirect_uri`, with `state` appended.
    redirect: Option<String>,
}

impl LogoutRequest {
    /// Check `params` against the registered clients; `verify_hint` verifies
    /// an `id_token_hint`. `Err` is a message for the error page.
    fn parse(
        params: &Params,
        clients: &ClientRegistry,
        verify_hint: impl FnOnce(&str) -> Result<IdClaims, VerifyError>,
    ) -> Result<LogoutRequest, String> {
        let hint = params
            .get("id_token_hint")
            .map(verify_hint)
            .transpose()
            .map_err(|e| format!("The id_token_hint is not accepted: {e}."))?;
        let client = match (params.get("client_id"), &hint) {
            (Some(id), hint) => {
                if hint.as_ref().is_some_and(|h| h.aud != id) {
                    return Err("The client_id is not the application the id_token_hint was issued to.".to_owned());
                }
                Some(clients.get(id).ok_or_else(|| format!("The application {id:?} is not registered."))?)
            }
            (None, Some(hint)) => clients.get(&hint.aud),
            (None, None) => None,
        };
        let redirect = match params.get("post_logout_redirect_uri") {
            None => None,
            Some(uri) => {
                // Section 3: only a URI the application registered, compared
                // as a string.
                let Some(client) = &client else {
                    return Err("A post_logout_redirect_uri needs client_id or id_token_hint to name the application."
                        .to_owned());
                };
                if !client.post_logout_redirect_uris.iter().any(|r| r.as_str() == uri) {
                    return Err(format!(
                        "The post_logout_redirect_uri is not registered for the application {:?}.",
                        client.id
                    ));
                }
                Some(with_state(uri, params.get("state")))
            }
        };
        Ok(LogoutRequest { hint, client, redirect })
    }
}

/// `uri` with `state` appended to its query (the registered URI is kept
/// byte for byte; it has no fragment).
fn with_state(uri: &str, state: Option<&str>) -> String {
    match state {
        None => uri.to_owned(),
        Some(state) => {
            let separator = match uri.split_once('?') {
                None => "?",
                Some((_, "")) => "",
                Some(_) => "&",
            };
            let pair = form_urlencoded::Serializer::new(String::new()).append_pair("state", state).finish();
            format!("{uri}{separator}{pair}")
        }
    }
}

/// Verify an `id_token_hint`: an ID token signed by a key tenure still
/// publishes, with our `iss`. Its expiry does not matter (section 2).
fn verify_hint(
    token: &str,
    keys: &KeySet,
    retain: crate::duration::Secs,
    max_lifetime: crate::duration::Secs,
    issuer: &str,
    now: UnixTime,
) -> Result<IdClaims, VerifyError> {
    match jwt::verify::<IdClaims>(token, TokenType::Id, keys, retain, max_lifetime, issuer, now) {
        Ok(claims) => Ok(claims),
        // `verify` reports expiry only after the key, algorithm, type,
        // signature and issuer checks have passed (pinned by a test below),
        // so the payload is ours.
        Err(VerifyError::Expired) => {
            let payload = token.split('.').nth(1).ok_or(VerifyError::Malformed)?;
            let bytes = B64.decode(payload).map_err(|_| VerifyError::Malformed)?;
            serde_json::from_slice(&bytes).map_err(|_| VerifyError::Malformed)
        }
        Err(e) => Err(e),
    }
}

/// The session the `tenure_session` cookie proves, unless it has ended.
async fn browser_session(state: &AppState, headers: &HeaderMap) -> Result<Option<UserSession>, PageError> {
    let session_cookie = cookie(headers, SESSION_COOKIE, state.is_https());
    service::logout::browser_session(state, session_cookie).await.map_err(|e| pages::failed(Flow::SignOut, &e))
}

/// "Do you want to sign out?", with the request's parameters carried in
/// hidden inputs and a CSRF token bound to this browser's `tenure_csrf`
/// cookie (set here unless a valid one exists).
fn confirmation_page(
    state: &AppState,
    headers: &HeaderMap,
    request: &LogoutRequest,
    params: &Params,
) -> Result<Response, PageError> {
    let existing = cookie(headers, CSRF_COOKIE, state.is_https()).filter(|c| is_csrf_cookie(c));
    let (csrf_cookie, fresh) = match existing {
        Some(c) => (c.to_owned(), false),
        None => (new_csrf_cookie().map_err(|_| internal("drawing a CSRF cookie", "no randomness"))?, true),
    };
    let csrf_token = csrf_token(&state.csrf_key, &csrf_cookie);
    let mut hidden = format!(r#"<input type="hidden" name="csrf_token" value="{}">"#, pages::escape(&csrf_token));
    for name in ["id_token_hint", "client_id", "post_logout_redirect_uri", "state"] {
        if let Some(value) = params.get(name) {
            hidden.push_str(&format!("\n<input type=\"hidden\" name=\"{name}\" value=\"{}\">", pages::escape(value)));
        }
    }
    let app = match &request.client {
        Some(c) => {
            format!(" <strong>{}</strong> asks you to sign out.", pages::escape(c.name.as_deref().unwrap_or(&c.id)))
        }
        None => String::new(),
    };
    let body = format!(
        r#"<p class="lead">Do you want to sign out?{app}
You will be signed out of every application that uses this sign-in.</p>
<form method="post" action="/logout">
{hidden}
<button type="submit">Sign out</button>
</form>"#
    );
    // Browsers apply form-action to the redirects after the post too.
    let form_target = request.redirect.as_deref().and_then(pages::form_action_source);
    let mut response = pages::respond(StatusCode::OK, page("Sign out", &body), form_target.as_deref());
    if fresh {
        let set_cookie = set_cookie(CSRF_COOKIE, &csrf_cookie, state.is_https(), None)
            .map_err(|e| internal("building a cookie", e))?;
        response.headers_mut().append(header::SET_COOKIE, set_cookie);
    }
    Ok(response)
}

fn signed_out_page() -> String {
    page("You are signed out", r#"<p class="lead">You can close this window.</p>"#)
}

/// A page in the look of the sign-in page: the document of
/// [`pages::message`] with its message paragraph replaced by `body`
/// (already escaped HTML).
fn page(heading: &str, body: &str) -> String {
    const SLOT: &str = "tenure-logout-page-body";
    let shell = pages::message(heading, SLOT, None);
    let paragraph = format!(r#"<p class="alert" role="alert">{SLOT}</p>"#);
    if shell.contains(&paragraph) { shell.replacen(&paragraph, body, 1) } else { shell.replacen(SLOT, body, 1) }
}

/// A form body: `application/x-www-form-urlencoded`, at most 64 KiB, each
/// parameter at most once.
async fn read_form(headers: &HeaderMap, body: Body) -> Result<Params, PageError> {
    let bytes = read_page_form(headers, body, Flow::SignOut).await?;
    Params::parse(&bytes).map_err(|e| PageError::BadRequest(Flow::SignOut, e.description.into_owned()))
}

/// Removes the session cookie from the browser.
fn clear_session_cookie(secure: bool) -> Result<HeaderValue, PageError> {
    set_cookie(SESSION_COOKIE, "", secure, Some(0)).map_err(|e| internal("building a cookie", e))
}

/// 303 to a registered post-logout redirect URI.
fn redirect(location: &str) -> Result<Response, PageError> {
    let location = HeaderValue::from_str(location).map_err(|e| internal("building a redirect", e))?;
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, location);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    Ok(response)
}

/// Log an internal failure (never a token or cookie) and answer 500.
fn internal(context: &'static str, err: impl std::fmt::Display) -> PageError {
    pages::internal(Flow::SignOut, context, err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::duration::Secs;
    use crate::token::SigningAlg;
    use crate::token::keys::KeyDir;

    const ISS: &str = "http://127.0.0.1:8080";
    const T0: UnixTime = UnixTime(1_700_000_000);

    fn clients() -> ClientRegistry {
        let text = r#"
[[clients]]
id = "web"
name = "Web <App>"
secret = "s"
redirect_uris = ["http://127.0.0.1:9000/cb"]
grant_types = ["authorization_code"]
post_logout_redirect_uris = ["http://127.0.0.1:9000/bye", "http://127.0.0.1:9000/q?x=1"]

[[clients]]
id = "other"
secret = "s"
redirect_uris = ["http://127.0.0.1:9001/cb"]
grant_types = ["authorization_code"]
"#;
        let config = Config::from_toml(text, &Default::default()).expect("config");
        ClientRegistry::new(config.clients).expect("registry")
    }

    fn id_claims(aud: &str, exp: u64) -> IdClaims {
        IdClaims {
            iss: ISS.into(),
            sub: "alice".into(),
            aud: aud.into(),
            azp: aud.into(),
            exp,
            iat: T0.as_secs(),
            auth_time: T0.as_secs(),
            nonce: None,
            sid: "0123456789abcdef0123456789abcdef".into(),
            at_hash: "x".into(),
        }
    }

    fn parse(query: &str, hint: Option<IdClaims>) -> Result<LogoutRequest, String> {
        let params = Params::parse(query.as_bytes()).expect("params");
        LogoutRequest::parse(&params, &clients(), |_| hint.ok_or(VerifyError::BadSignature))
    }

    #[test]
    fn the_redirect_must_be_registered_for_the_named_application() {
        let r = parse("client_id=web&post_logout_redirect_uri=http%3A%2F%2F127.0.0.1%3A9000%2Fbye&state=a%20b", None)
            .expect("valid");
        assert_eq!(r.redirect.as_deref(), Some("http://127.0.0.1:9000/bye?state=a+b"));
        let r = parse(
            "post_logout_redirect_uri=http%3A%2F%2F127.0.0.1%3A9000%2Fq%3Fx%3D1&state=s&id_token_hint=t",
            Some(id_claims("web", 0)),
        )
        .expect("the hint names the application");
        assert_eq!(r.redirect.as_deref(), Some("http://127.0.0.1:9000/q?x=1&state=s"));
        assert_eq!(r.client.map(|c| c.id.clone()).as_deref(), Some("web"));

        let err = |q: &str, hint| parse(q, hint).err().expect("refused");
        assert!(
            err("client_id=web&post_logout_redirect_uri=http%3A%2F%2Fevil.example%2F", None).contains("not registered")
        );
        assert!(
            err("client_id=other&post_logout_redirect_uri=http%3A%2F%2F127.0.0.1%3A9000%2Fbye", None)
                .contains("not registered")
        );
        assert!(err("post_logout_redirect_uri=http%3A%2F%2F127.0.0.1%3A9000%2Fbye", None).contains("needs client_id"));
        assert!(err("client_id=nobody", None).contains("not registered"));
        assert!(err("client_id=other&id_token_hint=t", Some(id_claims("web", 0))).contains("not the application"));
        assert!(err("id_token_hint=t", None).contains("id_token_hint is not accepted"));
        assert!(
            parse("ui_locales=fr&state=x", None).expect("valid").redirect.is_none(),
            "state alone redirects nowhere"
        );
    }

    #[test]
    fn state_is_appended_to_the_registered_uri_as_it_is() {
        assert_eq!(with_state("https://a.example/bye", None), "https://a.example/bye");
        assert_eq!(with_state("https://a.example/bye", Some("x&y=z")), "https://a.example/bye?state=x%26y%3Dz");
        assert_eq!(with_state("https://a.example/bye?a=1", Some("s")), "https://a.example/bye?a=1&state=s");
        assert_eq!(with_state("https://a.example/bye?", Some("s")), "https://a.example/bye?state=s");
    }

    #[test]
    fn an_expired_hint_is_accepted_but_only_when_we_signed_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kd = KeyDir::new(dir.path());
        kd.ensure_active(SigningAlg::ES256, T0, Secs::ZERO).expect("generate");
        let keys = kd.load().expect("load");
        let retain = Secs::hours(1);
        let later = T0.plus(Secs::minutes(10));
        let expired = jwt::sign(keys.active(T0), TokenType::Id, &id_claims("web", T0.as_secs() + 60)).expect("sign");
        assert_eq!(
            verify_hint(&expired, &keys, retain, Secs::days(30), ISS, later),
            Ok(id_claims("web", T0.as_secs() + 60))
        );
        assert!(verify_hint(&expired, &keys, retain, Secs::days(30), "http://other", later).is_err(), "another issuer");

        let mut parts: Vec<String> = expired.split('.').map(str::to_owned).collect();
        let mut forged = id_claims("web", T0.as_secs() + 60);
        forged.sub = "root".into();
        parts[1] = B64.encode(serde_json::to_vec(&forged).expect("json"));
        assert_eq!(
            verify_hint(&parts.join("."), &keys, retain, Secs::days(30), ISS, later),
            Err(VerifyError::BadSignature)
        );

        let other = tempfile::tempdir().expect("tempdir");
        let other_kd = KeyDir::new(other.path());
        other_kd.ensure_active(SigningAlg::ES256, T0, Secs::ZERO).expect("generate");
        let stranger =
            jwt::sign(other_kd.load().expect("load").active(T0), TokenType::Id, &id_claims("web", 0)).expect("sign");
        assert_eq!(verify_hint(&stranger, &keys, retain, Secs::days(30), ISS, later), Err(VerifyError::UnknownKey));
        let access = jwt::sign(keys.active(T0), TokenType::Access, &id_claims("web", 0)).expect("sign");
        assert!(matches!(
            verify_hint(&access, &keys, retain, Secs::days(30), ISS, later),
            Err(VerifyError::WrongType { .. })
        ));
    }

    #[test]
    fn pages_are_built_on_the_sign_in_look() {
        let html = signed_out_page();
        assert!(html.contains("<h1>You are signed out</h1>\n<p class=\"lead\">You can close this window.</p>"));
        assert!(!html.contains("tenure-logout-page-body"));
        assert!(html.starts_with("<!DOCTYPE html>"));
    }

    #[test]
    fn the_session_cookie_is_cleared() {
        assert_eq!(
            clear_session_cookie(true).expect("ascii"),
            "__Host-tenure_session=; HttpOnly; SameSite=Lax; Path=/; Secure; Max-Age=0"
        );
    }
}
