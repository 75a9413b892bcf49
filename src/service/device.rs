//! The device authorization grant (RFC 8628, SPEC 15): a command-line tool
//! asks for a device code and a user code at `POST /device_authorization`
//! ([`authorize`]), a person enters the user code at `/device`, signed in,
//! and approves or denies ([`find`], [`answer`]), and the tool polls `POST
//! /token` until the tokens come, once ([`poll`]).
//!
//! - The device code is 256 random bits and the user code 8 letters; the
//!   store keeps only their SHA-256 (`session::device`).
//! - Wrong user codes count against the sign-in throttle (SPEC 15 "like
//!   wrong passwords"): per person's session and per address, shared by the
//!   replicas on PostgreSQL, counted before the code is looked up.
//! - The family the approval starts is an ordinary one: created as code
//!   redemption creates one (in the poll's own store step), minted by the
//!   same minter, so the client's session override, rotation, reuse
//!   detection and revocation apply as to any other.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;

use super::token::Grant;
use crate::audit::{AuditEvent, EventKind};
use crate::clock::UnixTime;
use crate::oauth::client::{Client, GrantType, ScopeSet};
use crate::oauth::error::{ErrorCode, OAuthError};
use crate::oauth::throttle::{SharedCounts, ThrottleKey};
use crate::oauth::tokens::TokenResponse;
use crate::service::{AppState, ClientRequest, ServiceError};
use crate::session::device::{self, Approval, DeviceRequest, DeviceState, UserCode};
use crate::session::family::Family;
use crate::session::user_session::UserSession;
use crate::store::{DeviceAnswer, DevicePoll, Store};

/// RFC 8628 3.2: the answer of `POST /device_authorization`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct DeviceAuthorization {
    /// For the tool only: what it polls `/token` with.
    pub device_code: String,
    /// What the person enters at `verification_uri`: 8 letters of
    /// `BCDFGHJKLMNPQRSTVWXZ`, shown `XXXX-XXXX`.
    pub user_code: String,
    /// `{issuer}/device`.
    pub verification_uri: String,
    /// `{issuer}/device?user_code=XXXX-XXXX` (the person still confirms).
    pub verification_uri_complete: String,
    /// Seconds until the codes expire (`device_code_ttl`).
    pub expires_in: u64,
    /// Seconds to wait between polls (5).
    pub interval: u64,
}

/// How many fresh user codes are drawn when one is taken (20^8 codes: a
/// second draw is already rare).
const USER_CODE_DRAWS: usize = 5;

/// `POST /device_authorization` (RFC 8628 3.1-3.2): authenticate the client
/// as at `/token` (public clients too), check it may use the grant and the
/// scope it asks for (as at `/authorize`), and store a new request.
pub async fn authorize(
    state: &AppState,
    request: ClientRequest<'_>,
    now: UnixTime,
) -> Result<DeviceAuthorization, ServiceError> {
    let client = request.authenticate(state, now).await.map_err(ServiceError::OAuth)?;
    if !client.allows_grant(GrantType::DeviceCode) {
        let message = format!("client {:?} is not allowed the {} grant", client.id, GrantType::DeviceCode.as_str());
        return Err(ServiceError::OAuth(OAuthError::new(ErrorCode::UnauthorizedClient, message)));
    }
    let scope = requested_scope(&client, request.params.get("scope")).map_err(ServiceError::OAuth)?;
    let ttl = state.config.device_code_ttl;
    let record = DeviceRequest::new(&client.id, &scope.to_string(), now, ttl);
    let no_randomness = || ServiceError::internal("drawing a device code", "no randomness");
    let device_code = device::new_device_code().map_err(|_| no_randomness())?;
    let device_key = device::device_code_key(&device_code);
    for _ in 0..USER_CODE_DRAWS {
        let user_code = UserCode::generate().map_err(|_| no_randomness())?;
        let stored = state
            .store
            .put_device_request(&device_key, &user_code.key(), &record)
            .await
            .map_err(|e| ServiceError::internal("storing a device authorization request", e))?;
        if stored {
            tracing::info!(client_id = %client.id, "device authorization requested");
            let shown = user_code.display();
            let verification_uri = format!("{}/device", state.issuer);
            return Ok(DeviceAuthorization {
                device_code,
                verification_uri_complete: format!("{verification_uri}?user_code={shown}"),
                user_code: shown,
                verification_uri,
                expires_in: ttl.as_secs(),
                interval: device::DEFAULT_INTERVAL.as_secs(),
            });
        }
    }
    Err(ServiceError::internal("storing a device authorization request", "every user code drawn was taken"))
}

/// The scope of a request: the requested one, within the client's
/// registered scopes, or those when none is asked for (RFC 6749 3.3).
fn requested_scope(client: &Client, raw: Option<&str>) -> Result<ScopeSet, OAuthError> {
    let requested = match raw {
        None => ScopeSet::default(),
        Some(raw) => ScopeSet::parse(raw)
            .map_err(|bad| OAuthError::invalid_scope(format!("{bad:?} is not a valid scope token (RFC 6749 3.3)")))?,
    };
    let scope = if requested.is_empty() { client.scopes.clone() } else { requested };
    let refused: Vec<String> = scope.not_in(&client.scopes).map(ToString::to_string).collect();
    if !refused.is_empty() {
        return Err(OAuthError::invalid_scope(format!(
            "client {:?} may not request scope {}; it may request: {}",
            client.id,
            refused.join(" "),
            client.scopes
        )));
    }
    Ok(scope)
}

/// `POST /token` with `grant_type=urn:ietf:params:oauth:grant-type:device_code`
/// (RFC 8628 3.4-3.5): the poll's answer, or the tokens, once.
pub async fn poll<S: Store>(grant: Grant<'_, S>) -> Result<TokenResponse, OAuthError> {
    grant.require(GrantType::DeviceCode)?;
    let Grant { store, minter, client, params, proof } = grant;
    let device_code = params.require("device_code")?;
    let key = device::device_code_key(device_code);
    let unknown =
        || OAuthError::new(ErrorCode::InvalidGrant, "the device_code is invalid or was issued to another client");
    let record = store.device_request(&key).await.map_err(store_error)?.ok_or_else(unknown)?;
    if record.client_id != client.id {
        return Err(unknown());
    }
    let now = minter.now;
    // An approved request: the approving session must still be alive, and
    // the user's groups tighten the policy of the new tokens (SPEC 14).
    let mut user_history = None;
    if let DeviceState::Approved(approval) = &record.state
        && now < record.expires_at
    {
        let history = minter.history_for(&approval.username).await;
        let session = store.session(&approval.sid).await.map_err(store_error)?;
        if !session.as_ref().is_some_and(|s| s.is_live(&history, &[], now)) {
            return Err(OAuthError::new(
                ErrorCode::InvalidGrant,
                "the user session that approved this device code has ended; start again",
            ));
        }
        user_history = Some(history.into_owned());
    }
    let history = user_history.as_ref().unwrap_or(minter.history);
    let minter = &crate::oauth::tokens::Minter { history, ..*minter };
    let jkt = proof.map(|p| p.jkt.as_str());
    // Randomness outside the store's (re-runnable) step.
    let mut salt = [0u8; 16];
    SystemRandom::new().fill(&mut salt).map_err(|_| OAuthError::server_error())?;
    let (family_id, salt) = (crate::session::new_id(), B64.encode(salt));
    let ceiling = history.current().max_lifetime_ceiling;
    let make_family = |a: &Approval| {
        let family = Family {
            id: family_id.clone(),
            salt: salt.clone(),
            sid: a.sid.clone(),
            username: a.username.clone(),
            client_id: client.id.clone(),
            scope: record.scope.clone(),
            auth_time: a.auth_time,
            remember_me: a.remember_me,
            created_at: now,
            generation: 1,
            rotated_at: now,
            active_at: None,
            issues_refresh_tokens: client.allows_grant(GrantType::RefreshToken),
            revoked: None,
            // As in the code grant: a public client's family is bound to
            // its DPoP key (RFC 9449 5).
            jkt: if client.is_public() { jkt.map(str::to_owned) } else { None },
        };
        (family, a.auth_time.plus(ceiling))
    };
    let fallout = crate::service::revocation::Revocation { store, clients: minter.clients, now }.fallout("system");
    let outcome = store.poll_device(&key, &client.id, now, make_family, &fallout).await.map_err(store_error)?;
    fallout.log_committed();
    match outcome {
        DevicePoll::Issued { family, .. } => {
            tracing::info!(client_id = %client.id, sid = %family.sid, family = %family.id, "device code redeemed");
            if user_history.is_some() {
                return minter.mint(&family, client, &record.scope, None, jkt).await;
            }
            // Approved between the read above and this poll: the user's
            // groups still tighten the tokens (SPEC 14).
            let history = minter.history_for(&family.username).await;
            let minter = &crate::oauth::tokens::Minter { history: &history, ..*minter };
            minter.mint(&family, client, &record.scope, None, jkt).await
        }
        DevicePoll::Pending => Err(OAuthError::new(
            ErrorCode::AuthorizationPending,
            "the person has not approved the request yet; poll again after the interval (RFC 8628 3.5)",
        )),
        DevicePoll::SlowDown { interval } => Err(OAuthError::new(
            ErrorCode::SlowDown,
            format!("polling too fast: poll at most every {} seconds from now on (RFC 8628 3.5)", interval.as_secs()),
        )),
        DevicePoll::Denied => Err(OAuthError::new(ErrorCode::AccessDenied, "the person denied the request")),
        DevicePoll::Expired => Err(OAuthError::new(
            ErrorCode::ExpiredToken,
            "the device_code has expired; start again at the device authorization endpoint",
        )),
        DevicePoll::Used => Err(OAuthError::new(ErrorCode::InvalidGrant, "the device_code has already been used")),
        DevicePoll::NotFound => Err(unknown()),
    }
}

fn store_error(e: crate::store::StoreError) -> OAuthError {
    tracing::error!(error = %e, "store failure in the device_code grant");
    OAuthError::server_error()
}

/// A request as the page at `/device` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceView {
    /// `XXXX-XXXX`.
    pub user_code: String,
    pub client_id: String,
    /// The client's name, else its id.
    pub client_name: String,
    pub scopes: Vec<String>,
}

/// Why a user code cannot be answered (any more).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    Expired,
    /// Approved or denied already.
    Answered,
    /// The tokens were handed out.
    Used,
}

/// What a person's user code came to at `/device`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// Open: the person may approve or deny it.
    Open(DeviceView),
    /// Answered (when this step answered it: `approved` says how).
    Answered {
        view: DeviceView,
        approved: bool,
    },
    Closed(Closed),
    /// Not a code on record (counted as a failure).
    Unknown,
    /// Too many wrong codes from this session or address: retry after.
    Throttled {
        retry_after_secs: u64,
    },
}

/// What the person does with a code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Only look it up (the confirmation page).
    Look,
    Approve,
    Deny,
}

/// A person (signed in as `session`, from `remote`) enters `typed` at
/// `/device` and looks it up or answers it (`decision`), under the sign-in
/// throttle: an unknown or malformed code counts as a failure per session
/// and per address, before anything is read; a known one does not.
pub async fn enter(
    state: &AppState,
    typed: &str,
    decision: Decision,
    session: &UserSession,
    remote: &str,
    now: UnixTime,
) -> Result<Found, ServiceError> {
    let throttles = &state.sign_in_throttles;
    let (session_key, address_key) =
        (ThrottleKey::of(&["device", &session.sid]), ThrottleKey::of(&["address", remote]));
    let shared: &dyn SharedCounts = &state.store;
    throttles.user_address.consult(shared, session_key, now).await;
    throttles.address.consult(shared, address_key, now).await;
    let session_slot = match throttles.user_address.reserve(session_key, now) {
        Ok(slot) => slot,
        Err(refusal) => {
            tracing::warn!(sid = %session.sid, %remote, "user codes throttled for the session");
            return Ok(Found::Throttled { retry_after_secs: refusal.retry_after_secs() });
        }
    };
    let address_slot = match throttles.address.reserve(address_key, now) {
        Ok(slot) => slot,
        Err(refusal) => {
            session_slot.released();
            tracing::warn!(%remote, "user codes throttled for the address");
            return Ok(Found::Throttled { retry_after_secs: refusal.retry_after_secs() });
        }
    };
    let found = match UserCode::parse(typed) {
        None => Found::Unknown,
        Some(code) => look_up_or_answer(state, &code, decision, session, remote, now).await?,
    };
    if found == Found::Unknown {
        session_slot.failed(now);
        address_slot.failed(now);
        throttles.user_address.share_failure(shared, session_key, now).await;
        throttles.address.share_failure(shared, address_key, now).await;
        tracing::info!(sid = %session.sid, %remote, "an unknown user code was entered");
    } else {
        session_slot.released();
        address_slot.released();
    }
    Ok(found)
}

async fn look_up_or_answer(
    state: &AppState,
    code: &UserCode,
    decision: Decision,
    session: &UserSession,
    remote: &str,
    now: UnixTime,
) -> Result<Found, ServiceError> {
    let key = code.key();
    let failed = |e| ServiceError::internal("reading a device authorization request", e);
    let record = match decision {
        Decision::Look => state.store.device_request_by_user_code(&key).await.map_err(failed)?,
        Decision::Approve | Decision::Deny => {
            let approval = (decision == Decision::Approve).then(|| Approval {
                username: session.username.clone(),
                sid: session.sid.clone(),
                auth_time: session.signed_in,
                remember_me: session.remember_me,
                at: now,
            });
            // The request's client never changes: read it for the audit
            // event, which the answer writes in its own step.
            let Some(current) = state.store.device_request_by_user_code(&key).await.map_err(failed)? else {
                return Ok(Found::Unknown);
            };
            let kind = if approval.is_some() { EventKind::DeviceApproved } else { EventKind::DeviceDenied };
            let event = AuditEvent::new(now, kind, session.username.clone(), format!("client:{}", current.client_id))
                .details(serde_json::json!({ "sid": session.sid, "scope": current.scope, "ip": remote }));
            let answered = state
                .store
                .answer_device_request(&key, approval.as_ref(), now, &event)
                .await
                .map_err(|e| ServiceError::internal("answering a device authorization request", e))?;
            match answered {
                DeviceAnswer::Answered(r) => {
                    event.log();
                    let approved = decision == Decision::Approve;
                    tracing::info!(client_id = %r.client_id, sid = %session.sid, approved, "device authorization answered");
                    return Ok(Found::Answered { view: view(state, code, &r), approved });
                }
                DeviceAnswer::Closed(r) => Some(r),
                DeviceAnswer::NotFound => None,
            }
        }
    };
    let Some(record) = record else { return Ok(Found::Unknown) };
    Ok(match (&record.state, record.is_open(now)) {
        (_, true) => Found::Open(view(state, code, &record)),
        (DeviceState::Redeemed { .. }, _) => Found::Closed(Closed::Used),
        _ if now >= record.expires_at => Found::Closed(Closed::Expired),
        _ => Found::Closed(Closed::Answered),
    })
}

fn view(state: &AppState, code: &UserCode, record: &DeviceRequest) -> DeviceView {
    let client_name =
        state.clients.get(&record.client_id).and_then(|c| c.name.clone()).unwrap_or_else(|| record.client_id.clone());
    DeviceView {
        user_code: code.display(),
        client_id: record.client_id.clone(),
        client_name,
        scopes: record.scope.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
    }
}
