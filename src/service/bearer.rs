//! Access tokens presented to tenure's own resource endpoints (RFC 6750):
//! `/userinfo`, the account and admin API, the console.
//!
//! A token is accepted when tenure signed it (RFC 8725 rules, `typ: at+jwt`),
//! it is addressed to tenure (`aud` = issuer), it has not expired, and the
//! family it descends from is still alive. A DPoP-bound token (`cnf.jkt`)
//! is accepted only with a proof of that key carrying its `ath` (RFC 9449
//! 7.1). Reading the `Authorization` and `DPoP` headers is `http/bearer.rs`.

use super::{AppState, BearerError};
use crate::clock::UnixTime;
use crate::oauth::tokens::descends_from_live_family;
use crate::token::claims::AccessClaims;

/// Verify a bearer `token` and check its family is alive. A DPoP-bound
/// token is refused: it must come with a proof (RFC 9449 7.1).
pub async fn authenticate(state: &AppState, token: &str, now: UnixTime) -> Result<AccessClaims, BearerError> {
    let claims = verify_live(state, token, now).await?;
    if claims.cnf.is_some() {
        return Err(BearerError::DpopInvalidToken(
            "this access token is DPoP-bound: send it as Authorization: DPoP <token> with a DPoP proof".into(),
        ));
    }
    Ok(claims)
}

/// How a DPoP-scheme token came: the `DPoP` header values and the request
/// they must be bound to.
pub struct DpopPresented<'a> {
    pub proofs: &'a [&'a [u8]],
    pub method: &'a str,
    /// The path (the proof's `htu` is the issuer followed by it).
    pub endpoint: &'a str,
}

/// Verify a DPoP-scheme `token` (RFC 9449 7.1): the token must be bound,
/// and the proof valid, carry its `ath`, and be signed by its key.
pub async fn authenticate_dpop(
    state: &AppState,
    token: &str,
    presented: DpopPresented<'_>,
    now: UnixTime,
) -> Result<AccessClaims, BearerError> {
    let DpopPresented { proofs, method, endpoint } = presented;
    let claims = verify_live(state, token, now).await?;
    let Some(cnf) = &claims.cnf else {
        return Err(BearerError::DpopInvalidToken(
            "this access token is not DPoP-bound: send it as Authorization: Bearer <token>".into(),
        ));
    };
    let htu = format!("{}{endpoint}", state.issuer);
    let expected = crate::oauth::dpop::Expected { htm: method, htu: &htu, access_token: Some(token) };
    // Resource requests need no server nonce (RFC 9449 9 makes it optional).
    let proof = match state.dpop.check_with(proofs, &expected, false, now) {
        Ok(Some(p)) => p,
        Ok(None) => {
            return Err(BearerError::InvalidDpopProof("a DPoP-scheme request needs a DPoP header with a proof".into()));
        }
        Err(crate::oauth::dpop::DpopError::Invalid(m)) => return Err(BearerError::InvalidDpopProof(m)),
        Err(crate::oauth::dpop::DpopError::UseNonce) => {
            return Err(BearerError::InvalidDpopProof("the DPoP proof lacks a valid nonce".into()));
        }
    };
    if !bool::from(subtle::ConstantTimeEq::ct_eq(proof.jkt.as_bytes(), cnf.jkt.as_bytes())) {
        return Err(BearerError::InvalidDpopProof(
            "the DPoP proof is signed with another key than the one the access token is bound to".into(),
        ));
    }
    Ok(claims)
}

/// Verify `token` and check its family is alive, whatever its binding.
async fn verify_live(state: &AppState, token: &str, now: UnixTime) -> Result<AccessClaims, BearerError> {
    let keys = state.keys();
    let claims: AccessClaims = state
        .verified
        .verify(token, &keys, state.key_retention(), state.max_token_lifetime(), &state.issuer, now)
        .map_err(|e| BearerError::InvalidToken(e.to_string()))?;
    if claims.aud != state.issuer {
        return Err(BearerError::InvalidToken("the token is not addressed to this server".into()));
    }
    let overrides = |client_id: &str| state.client_override(client_id);
    let live =
        descends_from_live_family(&state.store, &state.history(), overrides, &claims, now).await.map_err(|e| {
            tracing::error!(error = %e, "store failure checking a bearer token");
            BearerError::Internal
        })?;
    if !live {
        return Err(BearerError::InvalidToken("the session of this token has ended or was revoked".into()));
    }
    Ok(claims)
}
