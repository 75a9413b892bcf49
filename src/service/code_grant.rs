//! The authorization-code grant (RFC 6749 4.1.3, RFC 7636 4.5-4.6, OIDC Core
//! 3.1.3): the code is single use and bound to the client, the redirect URI
//! and the PKCE challenge; redeeming it creates the family; a replay revokes
//! that family (RFC 6749 4.1.2).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::{SecureRandom, SystemRandom};

use super::token::Grant;
use crate::oauth::client::{Client, GrantType};
use crate::oauth::error::{ErrorCode, OAuthError};
use crate::oauth::params::Params;
use crate::oauth::tokens::TokenResponse;
use crate::session::code::{self, AuthCode};
use crate::session::family::Family;
use crate::store::{Redemption, Store};

fn invalid_grant(d: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidGrant, d)
}

fn store_error(e: crate::store::StoreError) -> OAuthError {
    crate::service::error::oauth_store("the authorization_code grant", e)
}

/// Check the token request against the stored code, without consuming it.
pub fn check(code: &AuthCode, client: &Client, params: &Params, now: crate::clock::UnixTime) -> Result<(), OAuthError> {
    if code.client_id != client.id {
        return Err(invalid_grant("the authorization code was issued to another client"));
    }
    if now >= code.expires_at() {
        return Err(invalid_grant("the authorization code has expired"));
    }
    // RFC 6749 4.1.3: required if the authorization request included it,
    // and then identical.
    match params.get("redirect_uri") {
        Some(uri) if uri != code.redirect_uri => {
            return Err(invalid_grant("redirect_uri differs from the one of the authorization request"));
        }
        None if code.redirect_uri_given => {
            return Err(OAuthError::invalid_request(
                "missing required parameter \"redirect_uri\": the authorization request included it (RFC 6749 4.1.3)",
            ));
        }
        _ => {}
    }
    match (&code.code_challenge, params.get("code_verifier")) {
        (Some(challenge), Some(verifier)) => {
            if !code::valid_verifier(verifier) {
                return Err(OAuthError::invalid_request(
                    "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636 4.1)",
                ));
            }
            if !code::verifier_matches(verifier, challenge) {
                return Err(invalid_grant("code_verifier does not match the code_challenge (RFC 7636 4.6)"));
            }
        }
        (Some(_), None) => {
            return Err(OAuthError::invalid_request("missing required parameter \"code_verifier\" (PKCE)"));
        }
        (None, Some(_)) => {
            // RFC 9700 4.8.2: a verifier without a challenge is a downgrade.
            return Err(invalid_grant("code_verifier sent, but the authorization request had no code_challenge"));
        }
        (None, None) => {}
    }
    Ok(())
}

/// Redeem `code` for `client`: tokens, or the RFC error. With a DPoP
/// `proof` the access token is bound to its key, and a public client's
/// family too (RFC 9449 5): every refresh must then prove the key.
pub async fn redeem<S: Store>(grant: Grant<'_, S>) -> Result<TokenResponse, OAuthError> {
    grant.require(GrantType::AuthorizationCode)?;
    let Grant { store, minter, client, params, proof } = grant;
    let code_value = params.require("code")?;
    let key = code::storage_key(code_value);
    let unknown = || invalid_grant("the authorization code is invalid or has expired");
    let record = store.code(&key).await.map_err(store_error)?.ok_or_else(unknown)?;
    let now = minter.now;
    // SPEC 14: the user's groups tighten the policy of the new tokens.
    let user_history = minter.history_for(&record.username).await;
    let minter = &crate::oauth::tokens::Minter { history: &user_history, ..*minter };
    if record.redeemed_family.is_none() {
        check(&record, client, params, now)?;
        let session = store.session(&record.sid).await.map_err(store_error)?;
        if !session.as_ref().is_some_and(|s| s.is_live(minter.history, &[], now)) {
            return Err(invalid_grant("the user session of this authorization code has ended"));
        }
    } else if record.client_id != client.id {
        return Err(invalid_grant("the authorization code was issued to another client"));
    }
    // RFC 9449 10: a code requested with dpop_jkt is redeemed only with that key.
    if let Some(wanted) = &record.dpop_jkt {
        match proof {
            None => {
                return Err(OAuthError::new(
                    ErrorCode::InvalidDpopProof,
                    "the authorization request named dpop_jkt: send a DPoP proof signed with that key",
                ));
            }
            Some(p) if p.jkt != *wanted => {
                return Err(OAuthError::new(
                    ErrorCode::InvalidDpopProof,
                    "the DPoP proof's key is not the one named by dpop_jkt in the authorization request",
                ));
            }
            Some(_) => {}
        }
    }
    let jkt = proof.map(|p| p.jkt.as_str());
    let mut salt = [0u8; 16];
    SystemRandom::new().fill(&mut salt).map_err(|_| OAuthError::server_error())?;
    let new_family = Family {
        id: crate::session::new_id(),
        salt: B64.encode(salt),
        sid: record.sid.clone(),
        username: record.username.clone(),
        client_id: client.id.clone(),
        scope: record.scope.clone(),
        auth_time: record.auth_time,
        remember_me: record.remember_me,
        created_at: now,
        generation: 1,
        rotated_at: now,
        active_at: None,
        issues_refresh_tokens: client.allows_grant(GrantType::RefreshToken),
        revoked: None,
        // A confidential client's refresh tokens are already bound to its
        // credentials (RFC 9449 5); a public client's are bound to the key.
        jkt: if client.is_public() { jkt.map(str::to_owned) } else { None },
    };
    let keep_until = record.auth_time.plus(minter.history.current().max_lifetime_ceiling);
    // A replay's kill and the families a new one supersedes are written
    // with their fallout in the redemption's own step.
    let fallout = crate::service::revocation::Revocation { store, clients: minter.clients, now }.fallout("system");
    let redeemed = store.redeem_code(&key, &new_family, keep_until, now, &fallout).await.map_err(store_error)?;
    fallout.log_committed();
    match redeemed {
        Redemption::Redeemed { .. } => {
            tracing::info!(client_id = %client.id, sid = %new_family.sid, family = %new_family.id, "authorization code redeemed");
            minter.mint(&new_family, client, &record.scope, record.nonce.clone(), jkt).await
        }
        Redemption::Replayed { revoked_family } => {
            tracing::warn!(
                client_id = %client.id,
                family = revoked_family.as_deref().unwrap_or("-"),
                reason = "authorization_code_replay",
                "authorization code replayed: its family is revoked"
            );
            Err(invalid_grant("the authorization code has already been used; the tokens issued for it are revoked"))
        }
        Redemption::NotFound => Err(unknown()),
    }
}
