//! The console's own sign-in (SPEC 9): it is the OAuth client `console`
//! (built in, public, PKCE S256) of the issuer it is served by.
//!
//! A visitor without a console session gets a random `tenure_console`
//! cookie and is sent to `/authorize` with a fresh `state` and PKCE
//! challenge; `/console/callback` checks the `state`, redeems the code
//! through the same use case as `POST /token`, and keeps the tokens
//! server-side (a fresh cookie value after sign-in, so a planted cookie
//! signs no one in). Every page verifies the access token exactly as the
//! admin API does (so a revoked family or session ends the console at once)
//! and refreshes it with the refresh token once half its lifetime has
//! passed: console use counts as activity, and an idle or expired session
//! ends the console session. Tokens never reach the browser.
//!
//! Console sessions live in the store (SPEC 12: nothing per process), so
//! any replica serves any console request and a restart signs nobody out.
//! The record is found by the SHA-256 of the cookie, and its body (tokens,
//! or the sign-in in progress, and the one-time notice) is sealed with
//! AES-256-GCM under a key derived (HKDF-SHA256) from the cookie value
//! itself, which the store never sees: a copy of the database opens
//! nothing. The store bounds them ([`MAX_SESSIONS`]; unfinished sign-ins
//! go first) and expires them (a sign-in after [`PENDING_FOR`], a session
//! at the lifetime ceiling). Of two replicas that find the tokens at half
//! life at once, one claims the refresh (compare-and-swap on the record's
//! version); the other goes on with the access token, still valid.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::digest::{SHA256, digest};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use super::ConsoleState;
use crate::clock::UnixTime;
use crate::duration::Secs;
use crate::http::api::Caller;
use crate::http::cookies::{self, csrf_token, csrf_token_matches, is_csrf_cookie, new_csrf_cookie};
use crate::oauth::OAuthError;
use crate::oauth::client::{Client, GrantType, Permission};
use crate::oauth::console_client::{CLIENT_ID, SCOPES, redirect_uri};
use crate::oauth::error::ErrorCode;
use crate::oauth::params::Params;
use crate::oauth::tokens::TokenResponse;
use crate::service;
use crate::service::error::BearerError;
use crate::store::{AnyStore, ConsoleSessionRecord, Store, StoreError};

/// The console-session cookie.
pub const COOKIE: &str = "tenure_console";
/// Set by "Sign out" until the next console sign-in: while it is there the
/// console asks for the password (`prompt=login`) instead of signing the
/// browser back in silently through its tenure session.
pub const SIGNED_OUT_COOKIE: &str = "tenure_console_signed_out";
/// The most console sessions kept; unfinished sign-ins go first, then the
/// oldest sessions.
pub const MAX_SESSIONS: usize = 10_000;
/// How long a sign-in may take from the redirect to the callback.
pub const PENDING_FOR: Secs = Secs::minutes(10);
/// How long a replica holds the claim to refresh a session's tokens.
const REFRESH_CLAIM: Secs = Secs::new(30);
/// How often a write of a console session is tried again after another
/// replica changed the record meanwhile.
const WRITE_ATTEMPTS: usize = 4;
/// The HKDF salt of the sealing key (its purpose, and the format's version).
const SEAL_SALT: &[u8] = b"tenure console session v1";

/// The sealed body of one console session.
#[derive(Clone, Serialize, Deserialize)]
enum Entry {
    /// Sent to `/authorize`; waiting for the callback.
    Pending {
        state: String,
        verifier: String,
        return_to: String,
    },
    Active(Tokens),
}

#[derive(Clone, Serialize, Deserialize)]
struct Tokens {
    access_token: String,
    refresh_token: Option<String>,
    issued_at: UnixTime,
    expires_at: UnixTime,
    /// A one-time notice for the next page (post/redirect/get).
    flash: Option<String>,
    /// A replica is refreshing the tokens until then; the others go on
    /// with the access token.
    #[serde(default)]
    refreshing_until: Option<UnixTime>,
}

/// What finds and opens one console session: the SHA-256 of its cookie
/// (the store's key) and the AEAD key derived from the cookie (never
/// stored).
struct Sealer {
    key: [u8; 32],
    aead: LessSafeKey,
}

impl Sealer {
    fn of(cookie: &str) -> Option<Sealer> {
        let mut key = [0u8; 32];
        key.copy_from_slice(digest(&SHA256, cookie.as_bytes()).as_ref());
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SEAL_SALT).extract(cookie.as_bytes());
        let okm = prk.expand(&[b"seal"], &AES_256_GCM).ok()?;
        Some(Sealer { key, aead: LessSafeKey::new(UnboundKey::from(okm)) })
    }

    /// `nonce || ciphertext || tag`, bound to the record's key.
    fn seal(&self, entry: &Entry) -> Option<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).ok()?;
        let mut body = serde_json::to_vec(entry).ok()?;
        self.aead
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&self.key), &mut body)
            .ok()?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&body);
        Some(sealed)
    }

    fn open(&self, sealed: &[u8]) -> Option<Entry> {
        let (nonce, body) = sealed.split_at_checked(NONCE_LEN)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = body.to_vec();
        let plain = self.aead.open_in_place(nonce, Aad::from(&self.key), &mut body).ok()?;
        serde_json::from_slice(plain).ok()
    }

    /// The store's record of `entry`.
    fn record(&self, entry: &Entry, created: UnixTime, expires_at: UnixTime) -> Option<ConsoleSessionRecord> {
        let pending = matches!(entry, Entry::Pending { .. });
        Some(ConsoleSessionRecord { pending, created, expires_at, sealed: self.seal(entry)? })
    }

    /// Change the signed-in session's tokens with `change` (read, change,
    /// compare-and-swap, again if another replica wrote meanwhile): the
    /// tokens and the version written, `None` when the session is gone.
    async fn update(
        &self,
        store: &AnyStore,
        now: UnixTime,
        mut change: impl FnMut(&mut Tokens),
    ) -> Option<(u64, Tokens)> {
        for _ in 0..WRITE_ATTEMPTS {
            let (version, record) = store.console_session(&self.key, now).await.ok()??;
            let Some(Entry::Active(mut tokens)) = self.open(&record.sealed) else { return None };
            change(&mut tokens);
            let next = self.record(&Entry::Active(tokens.clone()), record.created, record.expires_at)?;
            if store.replace_console_session(&self.key, version, &next).await.ok()? {
                return Some((version + 1, tokens));
            }
        }
        None
    }
}

/// A signed-in console user.
pub struct Viewer {
    pub caller: Caller,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
    cookie: String,
    /// The notice the previous request left, as read.
    flash: Option<String>,
    store: AnyStore,
    now: UnixTime,
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

    /// Leave a notice for the next page (whichever replica serves it).
    pub async fn flash(&self, message: impl Into<String>) {
        let message = message.into();
        if let Some(sealer) = Sealer::of(&self.cookie) {
            sealer.update(&self.store, self.now, |t| t.flash = Some(message.clone())).await;
        }
    }

    /// The notice left by the previous request, once.
    pub async fn take_flash(&self) -> Option<String> {
        // Nothing to clear in the common case: no write.
        self.flash.as_ref()?;
        let sealer = Sealer::of(&self.cookie)?;
        let mut taken = None;
        sealer.update(&self.store, self.now, |t| taken = t.flash.take()).await;
        taken
    }

    /// Forget the console session (after signing out), at every replica.
    pub async fn end(&self, _state: &ConsoleState) {
        if let Some(sealer) = Sealer::of(&self.cookie)
            && let Err(e) = self.store.remove_console_session(&sealer.key, None).await
        {
            tracing::error!(error = %e, "store failure ending a console session");
        }
    }
}

/// The signed-in viewer, or the response that sends the browser to sign in
/// (coming back to `return_to`, a `/console` path).
pub async fn viewer(state: &ConsoleState, headers: &HeaderMap, return_to: &str) -> Result<Viewer, Response> {
    match signed_in(state, headers).await {
        Ok(Some(v)) => Ok(v),
        Ok(None) => {
            let signed_out = cookies::cookie(headers, SIGNED_OUT_COOKIE, state.is_https()).is_some();
            Err(start_sign_in(state, return_to, signed_out).await)
        }
        Err(Outage) => Err(outage_page()),
    }
}

/// The database did not answer while the console session was checked
/// (SPEC 12): the session is kept, and the page says to try again.
struct Outage;

fn outage_page() -> Response {
    let html = crate::http::pages::message(
        "The console is unavailable for a moment",
        "The database does not answer right now. You are still signed in: try again in a few seconds.",
        None,
    );
    let mut response = crate::http::pages::respond(StatusCode::SERVICE_UNAVAILABLE, html, None);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(crate::service::error::DATABASE_RETRY_AFTER_SECS));
    response
}

/// Whether a store error says the database does not answer.
fn down(e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable(_))
}

async fn signed_in(state: &ConsoleState, headers: &HeaderMap) -> Result<Option<Viewer>, Outage> {
    let Some(cookie) = cookies::cookie(headers, COOKIE, state.is_https()).filter(|c| is_csrf_cookie(c)) else {
        return Ok(None);
    };
    let cookie = cookie.to_owned();
    let Some(sealer) = Sealer::of(&cookie) else { return Ok(None) };
    let store = &state.store;
    let now = state.now();
    let (mut version, record) = match store.console_session(&sealer.key, now).await {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(None),
        Err(e) if down(&e) => return Err(Outage),
        Err(e) => {
            tracing::error!(error = %e, "store failure reading a console session");
            return Ok(None);
        }
    };
    let Some(Entry::Active(mut tokens)) = sealer.open(&record.sealed) else { return Ok(None) };
    let half_life = Secs::new(tokens.expires_at.as_secs().saturating_sub(tokens.issued_at.as_secs()) / 2);
    let claimed_elsewhere = tokens.refreshing_until.is_some_and(|until| until > now);
    if now >= tokens.issued_at.plus(half_life) && !claimed_elsewhere {
        let Some(refresh_token) = tokens.refresh_token.clone() else {
            let _ = store.remove_console_session(&sealer.key, Some(version)).await;
            return Ok(None);
        };
        // Claim the refresh: of two replicas here at once, one refreshes
        // (a second use of the refresh token would be a reuse).
        let mut claim = tokens.clone();
        claim.refreshing_until = Some(now.plus(REFRESH_CLAIM));
        let Some(claimed) = sealer.record(&Entry::Active(claim), record.created, record.expires_at) else {
            return Ok(None);
        };
        let won = match store.replace_console_session(&sealer.key, version, &claimed).await {
            Ok(won) => won,
            Err(e) if down(&e) => return Err(Outage),
            Err(_) => return Ok(None),
        };
        if won {
            match refresh(state, &refresh_token, now).await {
                Ok(fresh) => {
                    let fresh = Tokens::from_response(fresh, now);
                    let written = sealer
                        .update(store, now, |t| {
                            let flash = t.flash.take();
                            *t = fresh.clone();
                            t.flash = flash;
                        })
                        .await;
                    let Some(written) = written else { return Ok(None) };
                    (version, tokens) = written;
                }
                // The claim lapses by itself; the next request refreshes.
                Err(e) if matches!(e.code, ErrorCode::TemporarilyUnavailable { .. }) => return Err(Outage),
                Err(_) => {
                    let _ = store.remove_console_session(&sealer.key, None).await;
                    return Ok(None);
                }
            }
        }
    }
    let claims = match crate::service::bearer::authenticate(state, &tokens.access_token, now).await {
        Ok(c) => c,
        Err(BearerError::Unavailable { .. }) => return Err(Outage),
        Err(_) => {
            // Only this version: a refresh written meanwhile stands.
            let _ = store.remove_console_session(&sealer.key, Some(version)).await;
            return Ok(None);
        }
    };
    let permissions = match crate::service::bearer::current_permissions(state, &claims).await {
        Ok(p) => p,
        Err(BearerError::Unavailable { .. }) => return Err(Outage),
        Err(_) => return Ok(None),
    };
    let csrf = csrf_token(&state.csrf_key, &cookie);
    Ok(Some(Viewer {
        caller: Caller { claims, permissions },
        csrf,
        cookie,
        flash: tokens.flash,
        store: store.clone(),
        now,
    }))
}

impl Tokens {
    fn from_response(r: TokenResponse, now: UnixTime) -> Tokens {
        Tokens {
            access_token: r.access_token,
            refresh_token: r.refresh_token,
            issued_at: now,
            expires_at: now.plus(Secs::new(r.expires_in)),
            flash: None,
            refreshing_until: None,
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

/// The answer when the store cannot keep a console session: try again.
fn unavailable() -> Response {
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, "the console is unavailable; try again").into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Send the browser to `/authorize` as the client `console`; after a
/// sign-out (`signed_out`) with `prompt=login`, so that the browser's back
/// button or the next visit shows the sign-in page, never a console page
/// signed in again silently.
async fn start_sign_in(state: &ConsoleState, return_to: &str, signed_out: bool) -> Response {
    let (Some(cookie), Some(oauth_state), Some(verifier)) = (new_csrf_cookie().ok(), random(16), random(32)) else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no randomness").into_response();
    };
    let challenge = B64.encode(digest(&SHA256, verifier.as_bytes()));
    let query = {
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
        query.finish()
    };
    let now = state.now();
    let entry = Entry::Pending { state: oauth_state, verifier, return_to: safe_return(return_to) };
    let Some(sealer) = Sealer::of(&cookie) else { return unavailable() };
    let Some(record) = sealer.record(&entry, now, now.plus(PENDING_FOR)) else { return unavailable() };
    if let Err(e) = state.store.put_console_session(&sealer.key, &record, MAX_SESSIONS, now).await {
        tracing::error!(error = %e, "store failure keeping a console sign-in");
        return unavailable();
    }
    let mut response = see_other(&format!("/authorize?{query}"));
    if let Ok(v) = cookies::set_cookie(COOKIE, &cookie, state.is_https(), None) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// No console session outlives the lifetime ceiling.
fn ceiling(state: &ConsoleState, now: UnixTime) -> UnixTime {
    now.plus(state.history().current().max_lifetime_ceiling).max(now.plus(Secs::new(1)))
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
    let sealer = Sealer::of(cookie).ok_or(CallbackError::NoSignIn)?;
    let now = state.now();
    let store_failed = |e: crate::store::StoreError| {
        tracing::error!(error = %e, "store failure taking a console sign-in");
        CallbackError::Refused("the console is unavailable; try again".into())
    };
    let (version, record) =
        state.store.console_session(&sealer.key, now).await.map_err(store_failed)?.ok_or(CallbackError::NoSignIn)?;
    // Only a sign-in in progress with this `state`: a signed-in session, or
    // a callback it did not start, is left alone.
    let Some(Entry::Pending { state: expected, verifier, return_to }) = sealer.open(&record.sealed) else {
        return Err(CallbackError::NoSignIn);
    };
    let given = params.get("state").map(String::as_str).unwrap_or_default();
    if !bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), given.as_bytes())) {
        return Err(CallbackError::NoSignIn);
    }
    // One callback per sign-in: taken from the store at the version read
    // (of two callbacks at two replicas, one gets it).
    if state.store.remove_console_session(&sealer.key, Some(version)).await.map_err(store_failed)?.is_none() {
        return Err(CallbackError::NoSignIn);
    }
    if let Some(error) = params.get("error") {
        let description = params.get("error_description").cloned().unwrap_or_default();
        return Err(CallbackError::Refused(format!("{error}: {description}")));
    }
    let code = params.get("code").ok_or_else(|| CallbackError::Refused("the callback carried no code".into()))?;
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
    let no_room = || CallbackError::Refused("the console is unavailable; try again".into());
    let fresh_sealer = Sealer::of(&fresh).ok_or_else(no_room)?;
    let record = fresh_sealer
        .record(&Entry::Active(Tokens::from_response(tokens, now)), now, ceiling(state, now))
        .ok_or_else(no_room)?;
    state.store.put_console_session(&fresh_sealer.key, &record, MAX_SESSIONS, now).await.map_err(|e| {
        tracing::error!(error = %e, "store failure keeping a console session");
        no_room()
    })?;
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
}
