//! The console's own sign-in (SPEC 9): it is the OAuth client `console`
//! (built in, public, PKCE S256) of the issuer it is served by.
//!
//! A visitor without a console session gets a random `tenure_console`
//! cookie and is sent to `/authorize` with a fresh `state` and PKCE
//! challenge; `/console/callback` checks the `state`, redeems the code
//! through the same use case as `POST /token`, and keeps the tokens
//! server-side in a bounded in-memory map keyed by a SHA-256 of the cookie
//! (a fresh cookie value after sign-in, so a planted cookie signs no one in).
//! Every page verifies the access token exactly as the admin API does (so a
//! revoked family or session ends the console at once) and refreshes it with
//! the refresh token once half its lifetime has passed: console use counts
//! as activity, and an idle or expired session ends the console session.
//! Tokens never reach the browser. A restart of tenure signs every console
//! user out of the console (they sign in again, usually silently through
//! their tenure session).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};

use super::ConsoleState;
use crate::clock::UnixTime;
use crate::duration::Secs;
use crate::http::api::Caller;
use crate::http::cookies::{self, csrf_token, csrf_token_matches, is_csrf_cookie, new_csrf_cookie};
use crate::oauth::OAuthError;
use crate::oauth::client::{Client, GrantType, Permission};
use crate::oauth::console_client::{CLIENT_ID, SCOPES, redirect_uri};
use crate::oauth::params::Params;
use crate::oauth::tokens::TokenResponse;
use crate::service;

/// The console-session cookie.
pub const COOKIE: &str = "tenure_console";
/// Set by "Sign out" until the next console sign-in: while it is there the
/// console asks for the password (`prompt=login`) instead of signing the
/// browser back in silently through its tenure session.
pub const SIGNED_OUT_COOKIE: &str = "tenure_console_signed_out";
/// The most console sessions kept in memory; the oldest go first.
pub const MAX_SESSIONS: usize = 10_000;
/// How long a sign-in may take from the redirect to the callback.
const PENDING_FOR: Secs = Secs::minutes(10);

/// The state of one console session.
enum Entry {
    /// Sent to `/authorize`; waiting for the callback.
    Pending {
        state: String,
        verifier: String,
        return_to: String,
    },
    Active(Tokens),
    /// Signed out or dead; removed from the map.
    Gone,
}

struct Tokens {
    access_token: String,
    refresh_token: Option<String>,
    issued_at: UnixTime,
    expires_at: UnixTime,
    /// A one-time notice for the next page (post/redirect/get).
    flash: Option<String>,
}

struct Slot {
    entry: Arc<tokio::sync::Mutex<Entry>>,
    created: UnixTime,
}

/// Console sessions by SHA-256 of their cookie value.
#[derive(Default)]
pub struct ConsoleSessions {
    slots: Mutex<HashMap<[u8; 32], Slot>>,
}

fn key_of(cookie: &str) -> [u8; 32] {
    let mut key = [0u8; 32];
    key.copy_from_slice(digest(&SHA256, cookie.as_bytes()).as_ref());
    key
}

impl ConsoleSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Slot>> {
        match self.slots.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn get(&self, cookie: &str) -> Option<Arc<tokio::sync::Mutex<Entry>>> {
        self.lock().get(&key_of(cookie)).map(|s| s.entry.clone())
    }

    fn remove(&self, cookie: &str) {
        self.lock().remove(&key_of(cookie));
    }

    /// Insert under `cookie`, making room first: expired sign-ins and
    /// sessions older than the ceiling go, then the oldest unfinished
    /// sign-in (so a flood of signed-out visitors cannot push out signed-in
    /// users), then the oldest session.
    fn insert(&self, cookie: &str, entry: Entry, now: UnixTime, oldest_alive: UnixTime) {
        let is_pending = |s: &Slot| matches!(s.entry.try_lock().as_deref(), Ok(Entry::Pending { .. }));
        let mut slots = self.lock();
        if slots.len() >= MAX_SESSIONS {
            slots.retain(|_, s| s.created > oldest_alive && (s.created.plus(PENDING_FOR) > now || !is_pending(s)));
        }
        while slots.len() >= MAX_SESSIONS {
            let oldest_pending = slots.iter().filter(|(_, s)| is_pending(s)).min_by_key(|(_, s)| s.created);
            let victim = match oldest_pending {
                Some((k, _)) => Some(*k),
                None => slots.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| *k),
            };
            let Some(victim) = victim else { break };
            slots.remove(&victim);
        }
        slots.insert(key_of(cookie), Slot { entry: Arc::new(tokio::sync::Mutex::new(entry)), created: now });
    }

    /// How many console sessions are kept (for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A signed-in console user.
pub struct Viewer {
    pub caller: Caller,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
    cookie: String,
    entry: Arc<tokio::sync::Mutex<Entry>>,
}

impl Viewer {
    pub fn username(&self) -> &str {
        &self.caller.claims.sub
    }

    pub fn has(&self, p: Permission) -> bool {
        self.caller.has(p)
    }

    /// Whether `token` (from a posted form) is this session's CSRF token.
    pub fn csrf_ok(&self, state: &ConsoleState, token: &str) -> bool {
        csrf_token_matches(&state.csrf_key, &self.cookie, token)
    }

    /// Leave a notice for the next page.
    pub async fn flash(&self, message: impl Into<String>) {
        if let Entry::Active(t) = &mut *self.entry.lock().await {
            t.flash = Some(message.into());
        }
    }

    /// The notice left by the previous request, once.
    pub async fn take_flash(&self) -> Option<String> {
        match &mut *self.entry.lock().await {
            Entry::Active(t) => t.flash.take(),
            _ => None,
        }
    }

    /// Forget the console session (after signing out).
    pub async fn end(&self, state: &ConsoleState) {
        *self.entry.lock().await = Entry::Gone;
        state.sessions.remove(&self.cookie);
    }
}

/// The signed-in viewer, or the response that sends the browser to sign in
/// (coming back to `return_to`, a `/console` path).
pub async fn viewer(state: &ConsoleState, headers: &HeaderMap, return_to: &str) -> Result<Viewer, Response> {
    match signed_in(state, headers).await {
        Some(v) => Ok(v),
        None => {
            let signed_out = cookies::cookie(headers, SIGNED_OUT_COOKIE, state.is_https()).is_some();
            Err(start_sign_in(state, return_to, signed_out))
        }
    }
}

async fn signed_in(state: &ConsoleState, headers: &HeaderMap) -> Option<Viewer> {
    let cookie = cookies::cookie(headers, COOKIE, state.is_https()).filter(|c| is_csrf_cookie(c))?.to_owned();
    let entry = state.sessions.get(&cookie)?;
    let mut guard = entry.lock().await;
    let Entry::Active(tokens) = &mut *guard else { return None };
    let now = state.now();
    let half_life = Secs::new(tokens.expires_at.as_secs().saturating_sub(tokens.issued_at.as_secs()) / 2);
    if now >= tokens.issued_at.plus(half_life) {
        let refreshed = match &tokens.refresh_token {
            Some(rt) => refresh(state, rt, now).await.ok(),
            None => None,
        };
        match refreshed {
            Some(fresh) => {
                let flash = tokens.flash.take();
                *tokens = Tokens::from_response(fresh, now);
                tokens.flash = flash;
            }
            None => {
                *guard = Entry::Gone;
                drop(guard);
                state.sessions.remove(&cookie);
                return None;
            }
        }
    }
    let claims = match crate::service::bearer::authenticate(state, &tokens.access_token, now).await {
        Ok(c) => c,
        Err(_) => {
            *guard = Entry::Gone;
            drop(guard);
            state.sessions.remove(&cookie);
            return None;
        }
    };
    drop(guard);
    let permissions = crate::service::bearer::current_permissions(state, &claims).await.ok()?;
    let csrf = csrf_token(&state.csrf_key, &cookie);
    Some(Viewer { caller: Caller { claims, permissions }, csrf, cookie, entry })
}

impl Tokens {
    fn from_response(r: TokenResponse, now: UnixTime) -> Tokens {
        Tokens {
            access_token: r.access_token,
            refresh_token: r.refresh_token,
            issued_at: now,
            expires_at: now.plus(Secs::new(r.expires_in)),
            flash: None,
        }
    }
}

fn random(bytes: usize) -> Option<String> {
    let mut raw = vec![0u8; bytes];
    SystemRandom::new().fill(&mut raw).ok()?;
    Some(B64.encode(raw))
}

/// The longest path (with its query) a pending sign-in keeps to come back
/// to: every anonymous visit keeps one, so its size is the server's choice.
pub const MAX_RETURN_LEN: usize = 512;

/// A `/console` path to come back to after sign-in, at most
/// [`MAX_RETURN_LEN`] bytes: a longer one comes back to its path without
/// the query (or to `/console`); anything else is `/console`.
pub fn safe_return(path: &str) -> String {
    let is_console_path = |p: &str| {
        (p == "/console" || p.starts_with("/console/") || p.starts_with("/console?"))
            && !p.contains("//")
            && !p.contains('\\')
            && p.bytes().all(|b| b.is_ascii_graphic())
    };
    let without_query = path.split_once('?').map_or(path, |(p, _)| p);
    [path, without_query]
        .into_iter()
        .find(|p| p.len() <= MAX_RETURN_LEN && is_console_path(p))
        .unwrap_or("/console")
        .to_owned()
}

/// Send the browser to `/authorize` as the client `console`; after a
/// sign-out (`signed_out`) with `prompt=login`, so that the browser's back
/// button or the next visit shows the sign-in page, never a console page
/// signed in again silently.
fn start_sign_in(state: &ConsoleState, return_to: &str, signed_out: bool) -> Response {
    let (Some(cookie), Some(oauth_state), Some(verifier)) = (new_csrf_cookie().ok(), random(16), random(32)) else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no randomness").into_response();
    };
    let challenge = B64.encode(digest(&SHA256, verifier.as_bytes()));
    let mut query = form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("response_type", "code")
        .append_pair("client_id", CLIENT_ID)
        .append_pair("redirect_uri", &redirect_uri(&state.issuer))
        .append_pair("scope", SCOPES)
        .append_pair("state", &oauth_state)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    if signed_out {
        query.append_pair("prompt", "login");
    }
    let query = query.finish();
    let now = state.now();
    let entry = Entry::Pending { state: oauth_state, verifier, return_to: safe_return(return_to) };
    state.sessions.insert(&cookie, entry, now, oldest_alive(state, now));
    let mut response = see_other(&format!("/authorize?{query}"));
    if let Ok(v) = cookies::set_cookie(COOKIE, &cookie, state.is_https(), None) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// No console session can be older than the ceiling.
fn oldest_alive(state: &ConsoleState, now: UnixTime) -> UnixTime {
    UnixTime(now.as_secs().saturating_sub(state.history().current().max_lifetime_ceiling.as_secs()))
}

/// Why the callback could not sign the viewer in.
pub enum CallbackError {
    /// No sign-in in progress for this browser (or it took too long).
    NoSignIn,
    /// The authorization server answered with an error.
    Refused(String),
}

/// `/console/callback`: check `state`, redeem the code, start the console
/// session under a fresh cookie; the response redirects to the page asked
/// for.
pub async fn finish_sign_in(
    state: &ConsoleState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<Response, CallbackError> {
    let cookie = cookies::cookie(headers, COOKIE, state.is_https())
        .filter(|c| is_csrf_cookie(c))
        .ok_or(CallbackError::NoSignIn)?;
    let entry = state.sessions.get(cookie).ok_or(CallbackError::NoSignIn)?;
    let (verifier, return_to) = {
        let mut guard = entry.lock().await;
        let Entry::Pending { state: expected, verifier, return_to } = &*guard else {
            return Err(CallbackError::NoSignIn);
        };
        let given = params.get("state").map(String::as_str).unwrap_or_default();
        if !bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), given.as_bytes())) {
            return Err(CallbackError::NoSignIn);
        }
        let taken = (verifier.clone(), return_to.clone());
        // One callback per sign-in.
        *guard = Entry::Gone;
        taken
    };
    state.sessions.remove(cookie);
    if let Some(error) = params.get("error") {
        let description = params.get("error_description").cloned().unwrap_or_default();
        return Err(CallbackError::Refused(format!("{error}: {description}")));
    }
    let code = params.get("code").ok_or_else(|| CallbackError::Refused("the callback carried no code".into()))?;
    let now = state.now();
    let redirect = redirect_uri(&state.issuer);
    let form = Params::from_pairs([
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect.as_str()),
        ("code_verifier", verifier.as_str()),
        ("client_id", CLIENT_ID),
    ]);
    let tokens = redeem(state, &form, now).await.map_err(|e| CallbackError::Refused(e.description.into_owned()))?;
    let fresh = new_csrf_cookie().map_err(|_| CallbackError::Refused("no randomness".into()))?;
    state.sessions.insert(&fresh, Entry::Active(Tokens::from_response(tokens, now)), now, oldest_alive(state, now));
    let mut response = see_other(&return_to);
    if let Ok(v) = cookies::set_cookie(COOKIE, &fresh, state.is_https(), None) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    if cookies::cookie(headers, SIGNED_OUT_COOKIE, state.is_https()).is_some()
        && let Ok(v) = cookies::set_cookie(SIGNED_OUT_COOKIE, "", state.is_https(), Some(0))
    {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(response)
}

async fn refresh(state: &ConsoleState, refresh_token: &str, now: UnixTime) -> Result<TokenResponse, OAuthError> {
    let form = Params::from_pairs([
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", CLIENT_ID),
    ]);
    let client = console_client(state)?;
    service::token::issue(state, &client, GrantType::RefreshToken, &form, None, now).await
}

async fn redeem(state: &ConsoleState, form: &Params, now: UnixTime) -> Result<TokenResponse, OAuthError> {
    let client = console_client(state)?;
    service::token::issue(state, &client, GrantType::AuthorizationCode, form, None, now).await
}

fn console_client(state: &ConsoleState) -> Result<Arc<Client>, OAuthError> {
    state.clients.get(CLIENT_ID).ok_or_else(|| OAuthError::invalid_client("the built-in console client is missing"))
}

/// The response that clears the console cookie, and the browser's cached
/// pages of this origin (its back/forward cache included), so the back
/// button cannot show a page of the signed-out session; it marks the
/// browser as signed out of the console ([`SIGNED_OUT_COOKIE`]), so a page
/// fetched again asks for the password rather than signing in silently
/// through the tenure session, which "Sign out" leaves to other apps.
pub fn clear_cookie(state: &ConsoleState, mut response: Response) -> Response {
    if let Ok(v) = cookies::set_cookie(COOKIE, "", state.is_https(), Some(0)) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    if let Ok(v) = cookies::set_cookie(SIGNED_OUT_COOKIE, "1", state.is_https(), None) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response.headers_mut().insert("clear-site-data", HeaderValue::from_static(CLEAR_CACHE));
    response
}

/// `Clear-Site-Data` of the sign-out responses: the browser's HTTP cache and
/// back/forward cache of this origin.
pub const CLEAR_CACHE: &str = "\"cache\"";

/// 303 See Other to `location` (post/redirect/get).
pub fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

/// The family of the viewer's tokens, to revoke at sign-out.
pub fn family_of(viewer: &Viewer) -> Option<&str> {
    viewer.caller.claims.fid.as_deref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_paths_are_returned_to() {
        assert_eq!(safe_return("/console/users?query=a"), "/console/users?query=a");
        assert_eq!(safe_return("/console"), "/console");
        for bad in ["//evil.example", "/console//evil", "https://evil.example/console", "/consolex", "/console/\\x"] {
            assert_eq!(safe_return(bad), "/console", "{bad}");
        }
        // The server chooses the size it keeps: a long query is dropped, a
        // long path gives /console.
        let long_query = format!("/console/users?query={}", "a".repeat(60_000));
        assert_eq!(safe_return(&long_query), "/console/users");
        let just_fits = format!("/console/users?query={}", "a".repeat(MAX_RETURN_LEN - "/console/users?query=".len()));
        assert_eq!(safe_return(&just_fits), just_fits);
        assert_eq!(safe_return(&format!("/console/{}", "a".repeat(MAX_RETURN_LEN))), "/console");
        assert_eq!(safe_return(&format!("//evil?{}", "a".repeat(MAX_RETURN_LEN))), "/console");
    }

    #[test]
    fn the_map_is_bounded_and_drops_the_oldest() {
        let sessions = ConsoleSessions::default();
        let t0 = UnixTime(1_700_000_000);
        for i in 0..MAX_SESSIONS {
            let entry = Entry::Active(Tokens {
                access_token: String::new(),
                refresh_token: None,
                issued_at: t0,
                expires_at: t0,
                flash: None,
            });
            sessions.insert(&format!("c{i}"), entry, t0.plus(Secs::new(i as u64)), UnixTime(0));
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        sessions.insert("newest", Entry::Gone, t0.plus(Secs::days(1)), UnixTime(0));
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(sessions.get("c0").is_none(), "the oldest went");
        assert!(sessions.get("c1").is_some());
        assert!(sessions.get("newest").is_some());
    }

    #[test]
    fn unfinished_sign_ins_are_dropped_before_signed_in_users() {
        let sessions = ConsoleSessions::default();
        let t0 = UnixTime(1_700_000_000);
        let active = || {
            Entry::Active(Tokens {
                access_token: String::new(),
                refresh_token: None,
                issued_at: t0,
                expires_at: t0,
                flash: None,
            })
        };
        let pending = || Entry::Pending { state: String::new(), verifier: String::new(), return_to: String::new() };
        sessions.insert("signed-in", active(), t0, UnixTime(0));
        for i in 1..MAX_SESSIONS + 50 {
            sessions.insert(&format!("visitor{i}"), pending(), t0.plus(Secs::new(1)), UnixTime(0));
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(sessions.get("signed-in").is_some(), "a flood of sign-ins does not push out a signed-in user");
    }
}
