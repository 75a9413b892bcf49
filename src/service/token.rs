//! `POST /token` (RFC 6749 3.2): authenticate the client, check its DPoP
//! proof, dispatch on `grant_type` and sign. Token exchanges refused for
//! policy reasons are audited here.

use super::exchange::{ACCESS_TOKEN_TYPE as EXCHANGED_TYPE, Exchange};
use super::{code_grant, device, refresh_grant};
use crate::audit::{AuditEvent, EventKind};
use crate::clock::UnixTime;
use crate::oauth::client::{Client, GrantType};
use crate::oauth::dpop::{DpopError, Expected, Proof};
use crate::oauth::error::ErrorCode;
use crate::oauth::params::Params;
use crate::oauth::tokens::{Minter, TokenResponse};
use crate::oauth::{OAuthError, client_credentials};
use crate::policy::PolicyHistory;
use crate::service::dpop::ProofRefusal;
use crate::service::{AppState, ClientRequest, ServiceError};
use crate::store::Store;
use crate::telemetry::GrantLabels;
use crate::token::claims::{AccessClaims, Confirmation};
use crate::token::jwt::{self, TokenType};
use crate::token::keys::KeySet;

/// A token request as the client sent it.
pub struct TokenRequest<'a> {
    /// The form and the client's credentials.
    pub client: ClientRequest<'a>,
    /// The values of the `DPoP` headers, unchecked.
    pub dpop: &'a [&'a [u8]],
}

/// The token response for `request` at `now`, or the RFC 6749 5.2 refusal.
pub async fn token(state: &AppState, request: TokenRequest<'_>, now: UnixTime) -> Result<TokenResponse, ServiceError> {
    grant(state, request, now).await.map_err(ServiceError::OAuth)
}

async fn grant(state: &AppState, request: TokenRequest<'_>, now: UnixTime) -> Result<TokenResponse, OAuthError> {
    let params = request.client.params;
    let grant_type = params.require("grant_type")?;
    let Some(grant) = GrantType::parse(grant_type) else {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            format!(
                "grant_type {grant_type:?} is not supported; this server supports: authorization_code, refresh_token, client_credentials, urn:ietf:params:oauth:grant-type:token-exchange, urn:ietf:params:oauth:grant-type:device_code"
            ),
        ));
    };
    // SPEC 12: the settings and clients in force are current for this
    // request. A refresh reads its family first, with the cache epoch in
    // the same statement (one round trip for both); every other grant
    // reads the epoch.
    let seen = match grant {
        GrantType::RefreshToken => prefetch_family(state, params).await?,
        _ => None,
    };
    match seen.as_ref().and_then(|v| v.cache_epoch) {
        Some(epoch) => state.follow_epoch(epoch).await,
        None => state.fresh().await,
    }
    let client = request.client.authenticate(state, now).await?;
    let proof = token_proof(state, request.dpop, now).await?;
    let body = issue_seen(state, &client, grant, params, proof.as_ref(), now, seen).await?;
    state.metrics.tokens_issued.get_or_create(&GrantLabels { grant_type: grant.as_str().to_owned() }).inc();
    tracing::debug!(client_id = %client.id, grant_type = grant.as_str(), "tokens issued");
    Ok(body)
}

/// The tokens of `grant` for the authenticated `client` (its DPoP `proof`
/// checked), at `now`: the one place the token minter is built. `POST
/// /token` comes here after authenticating the client, the console (the
/// built-in client `console`) with its own code and refresh token.
pub async fn issue(
    state: &AppState,
    client: &Client,
    grant: GrantType,
    params: &Params,
    proof: Option<&Proof>,
    now: UnixTime,
) -> Result<TokenResponse, OAuthError> {
    issue_seen(state, client, grant, params, proof, now, None).await
}

/// The refresh token's family and session, read before the client is
/// authenticated (the read the grant needs anyway; a view the store kept
/// will do, `Store::live_family_view`): `None` when the form
/// has no refresh token of ours, or the read failed (the grant reads again
/// and answers for it). Nothing is decided on it before the MAC check. A
/// database that does not answer is a 503 at once (SPEC 12), rather than
/// after every later step has waited for it too.
async fn prefetch_family(state: &AppState, params: &Params) -> Result<Option<crate::store::FamilyView>, OAuthError> {
    let Some(presented) = params.get("refresh_token").and_then(crate::session::refresh_token::parse) else {
        return Ok(None);
    };
    match state.store.live_family_view(&presented.family_id).await {
        Ok(view) => Ok(view),
        Err(e @ crate::store::StoreError::Unavailable(_)) => {
            Err(crate::service::error::oauth_store("the refresh_token grant", e))
        }
        Err(_) => Ok(None),
    }
}

/// [`issue`] with the refresh token's family as already read (`seen`).
async fn issue_seen(
    state: &AppState,
    client: &Client,
    grant: GrantType,
    params: &Params,
    proof: Option<&Proof>,
    now: UnixTime,
    seen: Option<crate::store::FamilyView>,
) -> Result<TokenResponse, OAuthError> {
    let jkt = proof.map(|p| p.jkt.as_str());
    let keys = state.keys();
    let history = state.history();
    let groups = state.groups();
    let minter = Minter {
        keys: &keys,
        clients: &state.clients,
        users: state,
        refresh_key: &state.refresh_key,
        history: &history,
        groups: &groups,
        issuer: &state.issuer,
        now,
    };
    Ok(match grant {
        GrantType::ClientCredentials => {
            // A client's session override may shorten its tokens (SPEC 3).
            let ttl = history.current().limits(false, client.session.as_ref()).access_token_ttl;
            let claims = client_credentials::grant(client, params, &state.issuer, now, ttl)?;
            signed(&keys, claims, jkt, None, now)?
        }
        GrantType::AuthorizationCode => {
            code_grant::redeem(Grant { store: &state.store, minter: &minter, client, params, proof }).await?
        }
        GrantType::RefreshToken => {
            refresh_grant::refresh(Grant { store: &state.store, minter: &minter, client, params, proof }, seen).await?
        }
        GrantType::TokenExchange => exchange(state, client, params, &keys, &history, now, jkt).await?,
        GrantType::DeviceCode => {
            device::poll(Grant { store: &state.store, minter: &minter, client, params, proof }).await?
        }
    })
}

/// What the code and refresh grants take: the store, the minter, the
/// authenticated client, its form and its checked DPoP proof.
pub struct Grant<'a, S> {
    pub store: &'a S,
    pub minter: &'a Minter<'a>,
    pub client: &'a Client,
    pub params: &'a Params,
    pub proof: Option<&'a Proof>,
}

impl<S> Grant<'_, S> {
    /// `unauthorized_client` unless the client may use the code, refresh or
    /// device `grant` (named as in `grant_type`).
    pub fn require(&self, grant: GrantType) -> Result<(), OAuthError> {
        if self.client.allows_grant(grant) {
            return Ok(());
        }
        let message = format!("client {:?} is not allowed the {} grant", self.client.id, grant.as_str());
        Err(OAuthError::new(ErrorCode::UnauthorizedClient, message))
    }
}

/// The checked DPoP proof of a token request (`POST {issuer}/token`, with
/// the server's nonce when required): `None` without a `DPoP` header.
async fn token_proof(state: &AppState, values: &[&[u8]], now: UnixTime) -> Result<Option<Proof>, OAuthError> {
    let htu = format!("{}/token", state.issuer);
    let expected = Expected { htm: "POST", htu: &htu, access_token: None };
    match crate::service::dpop::check(state, values, &expected, state.dpop.require_nonce, now).await {
        Ok(proof) => Ok(proof),
        Err(ProofRefusal::Dpop(e)) => Err(dpop_error(e)),
        Err(ProofRefusal::Store(e)) => {
            tracing::error!(error = %e, "store failure remembering a DPoP proof");
            Err(OAuthError::server_error())
        }
    }
}

fn dpop_error(e: DpopError) -> OAuthError {
    match e {
        DpopError::Invalid(m) => OAuthError::new(ErrorCode::InvalidDpopProof, m),
        DpopError::UseNonce => OAuthError::new(
            ErrorCode::UseDpopNonce,
            "the DPoP proof must carry the server's nonce: retry with the nonce of the DPoP-Nonce header",
        ),
    }
}

/// Sign `claims` (bound to `jkt` when DPoP was used) as an access-token
/// response without refresh or ID token.
fn signed(
    keys: &KeySet,
    mut claims: AccessClaims,
    jkt: Option<&str>,
    issued_token_type: Option<&'static str>,
    now: UnixTime,
) -> Result<TokenResponse, OAuthError> {
    claims.cnf = jkt.map(|jkt| Confirmation { jkt: jkt.to_owned() });
    let access_token =
        jwt::sign(keys.active(now), TokenType::Access, &claims).map_err(|e| internal("signing an access token", e))?;
    Ok(TokenResponse {
        access_token,
        issued_token_type,
        token_type: if jkt.is_some() { "DPoP" } else { "Bearer" },
        expires_in: claims.exp.saturating_sub(claims.iat),
        scope: claims.scope,
        refresh_token: None,
        refresh_expires_in: None,
        session_expires_in: None,
        id_token: None,
    })
}

/// RFC 8693 2.2: the exchanged access token; refusals for policy reasons
/// are audited.
async fn exchange(
    state: &AppState,
    client: &Client,
    params: &Params,
    keys: &KeySet,
    history: &PolicyHistory,
    now: UnixTime,
    jkt: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let groups = state.groups();
    let exchange = Exchange {
        keys,
        clients: &state.clients,
        retain: state.key_retention(),
        issuer: &state.issuer,
        history,
        groups: &groups,
        users: state,
        now,
    };
    let overrides = |client_id: &str| state.client_override(client_id);
    let claims = match exchange.decide(&state.store, client, overrides, params, jkt).await {
        Ok(claims) => claims,
        Err(refusal) => {
            if refusal.audit {
                let event = AuditEvent::new(
                    now,
                    EventKind::TokenExchangeRefused,
                    format!("client:{}", client.id),
                    "token_exchange",
                )
                .reason(refusal.error.description.clone())
                .details(serde_json::json!({
                    "error": refusal.error.code.as_str(),
                    "audience": params.get("audience").or(params.get("resource")),
                }));
                state
                    .store
                    .append_event(&event)
                    .await
                    .map_err(|e| crate::service::error::oauth_store("auditing a refused exchange", e))?;
                event.log();
            }
            return Err(refusal.error);
        }
    };
    tracing::info!(client_id = %client.id, audience = %claims.aud, sub = %claims.sub, "token exchanged");
    signed(keys, claims, jkt, Some(EXCHANGED_TYPE), now)
}

/// Log an internal failure and answer `server_error` without details.
pub(crate) fn internal(context: &'static str, err: impl std::fmt::Display) -> OAuthError {
    tracing::error!(%context, error = %err, "internal error");
    OAuthError::server_error()
}
