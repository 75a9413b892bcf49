//! The refresh-token grant (RFC 6749 6; RFC 9700 4.14; SPEC 5): rotation,
//! the idempotent grace window, and reuse detection that revokes the family.

use super::token::Grant;
use crate::oauth::client::{GrantType, ScopeSet};
use crate::oauth::error::{ErrorCode, OAuthError};
use crate::oauth::tokens::TokenResponse;
use crate::session::end::{EndReason, Ended};
use crate::session::family::{self, Activity, RefreshDecision};
use crate::session::refresh_token;
use crate::store::Store;

fn invalid_grant(d: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidGrant, d)
}

fn store_error(e: crate::store::StoreError) -> OAuthError {
    crate::service::error::oauth_store("the refresh_token grant", e)
}

/// Refresh for `client`. A family bound to a DPoP key (RFC 9449 5) needs a
/// `proof` signed with that key, checked before anything rotates, so a
/// stolen bound refresh token is useless, inside the grace window too.
/// `seen`: the family as the caller already read it, if it did.
pub async fn refresh<S: Store>(
    grant: Grant<'_, S>,
    seen: Option<crate::store::FamilyView>,
) -> Result<TokenResponse, OAuthError> {
    grant.require(GrantType::RefreshToken)?;
    let Grant { store, minter, client, params, proof } = grant;
    let token = params.require("refresh_token")?;
    let not_valid = || invalid_grant("the refresh token is not valid");
    // A token that fails any of these checks was never issued: it kills nothing.
    let presented = refresh_token::parse(token).ok_or_else(not_valid)?;
    // The family with its session, in one read: the MAC check's, and the
    // state the rotation decides on first (`Store::refresh_seen`).
    let seen = match seen.filter(|v| v.family.id == presented.family_id) {
        Some(v) => v,
        None => store.family_view(&presented.family_id).await.map_err(store_error)?.ok_or_else(not_valid)?,
    };
    let stored = &seen.family;
    if !minter.refresh_key.verify(&presented, &stored.salt) {
        return Err(not_valid());
    }
    if stored.client_id != client.id {
        return Err(invalid_grant("the refresh token was issued to another client"));
    }
    if let Some(bound) = &stored.jkt {
        let Some(p) = proof else {
            return Err(OAuthError::new(
                ErrorCode::InvalidDpopProof,
                "this refresh token is bound to a DPoP key: send a DPoP header with a proof signed by that key",
            ));
        };
        if !bool::from(subtle::ConstantTimeEq::ct_eq(p.jkt.as_bytes(), bound.as_bytes())) {
            return Err(invalid_grant(
                "the DPoP proof is signed with another key than the one this refresh token is bound to",
            ));
        }
    }
    let jkt = proof.map(|p| p.jkt.as_str());
    // RFC 6749 6: the scope may narrow, never widen.
    let scope = match params.get("scope") {
        None => stored.scope.clone(),
        Some(raw) => {
            let requested = ScopeSet::parse(raw).map_err(|bad| {
                OAuthError::invalid_scope(format!("{bad:?} is not a valid scope token (RFC 6749 3.3)"))
            })?;
            let granted = ScopeSet::parse(&stored.scope).unwrap_or_default();
            let wider: Vec<String> = requested.not_in(&granted).map(ToString::to_string).collect();
            if !wider.is_empty() {
                return Err(OAuthError::invalid_scope(format!(
                    "scope {} was not granted to this refresh token; it may request at most: {granted}",
                    wider.join(" ")
                )));
            }
            requested.to_string()
        }
    };
    // SPEC 13: a silent refresh no user asked for rotates but does not move
    // the idle clock.
    let activity = match params.get("activity") {
        None | Some("interactive") => Activity::Interactive,
        Some("background") => Activity::Background,
        Some(other) => {
            return Err(OAuthError::invalid_request(format!(
                "activity must be interactive or background, not {:?}",
                other.chars().take(40).collect::<String>()
            )));
        }
    };
    let now = minter.now;
    // SPEC 14: the user's groups tighten every policy; read here, before the
    // store step, so membership changes apply at this check.
    let user_history = minter.history_for(&stored.username).await;
    let history: &crate::policy::PolicyHistory = &user_history;
    let minter = &crate::oauth::tokens::Minter { history, ..*minter };
    let grace = history.current().refresh_reuse_grace;
    let client_override = client.session.as_ref();
    // Only a reuse kill uses the fallout: it is written in the same step.
    let fallout = crate::service::revocation::Revocation { store, clients: minter.clients, now }.fallout("system");
    let decision = store
        .refresh_seen(
            seen,
            |f, session| {
                // SPEC 14: why it ended is decided on the records this very
                // step reads, so it never disagrees with what was written.
                let ended = family::ended(history, f, session, client_override, now);
                family::decide_refresh(f, presented.generation, now, grace, ended, activity)
            },
            &fallout,
        )
        .await
        .map_err(store_error)?;
    fallout.log_committed();
    let decision = decision.ok_or_else(not_valid)?;
    match decision {
        RefreshDecision::Rotate(next) | RefreshDecision::Grace(next) => {
            minter.mint(&next, client, &scope, None, jkt).await
        }
        RefreshDecision::Reuse(killed) => {
            // The kill is committed with its logout, feed and audit entries.
            tracing::warn!(
                client_id = %client.id,
                sid = %killed.sid,
                family = %killed.id,
                reason = "refresh_token_reuse",
                "a spent refresh token was presented: its family is revoked"
            );
            let ended = Ended { at: now, reason: EndReason::ReuseDetected, by: None, limit: None };
            Err(OAuthError::session_ended(ended.reason, ended.description()))
        }
        RefreshDecision::Ended(ended) => Err(OAuthError::session_ended(ended.reason, ended.description())),
        RefreshDecision::Refused(why) => Err(invalid_grant(why)),
    }
}
