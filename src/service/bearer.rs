//! Access tokens presented to tenure's own resource endpoints (RFC 6750):
//! `/userinfo`, the account and admin API, the console.
//!
//! A token is accepted when tenure signed it (RFC 8725 rules, `typ: at+jwt`),
//! it is addressed to tenure (`aud` = issuer), it has not expired, and the
//! family it descends from is still alive. A DPoP-bound token (`cnf.jkt`)
//! is accepted only with a proof of that key carrying its `ath` (RFC 9449
//! 7.1). Reading the `Authorization` and `DPoP` headers is `http/bearer.rs`.
//!
//! A token never acts with more than its holder has now: the client it was
//! issued to must still exist, and the permissions it acts with
//! ([`current_permissions`]) are those it carries that its user or client
//! still holds, read at every request (a deleted client's token is dead, a
//! demoted administrator's token loses the permission at once).

use std::collections::BTreeSet;

use super::{AppState, BearerError};
use crate::clock::UnixTime;
use crate::oauth::client::Permission;
use crate::oauth::client_credentials::ADMIN_SCOPE;
use crate::service::dpop::ProofRefusal;
use crate::service::lookup::descends_from_live_family;
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
    let proof = match crate::service::dpop::check(state, proofs, &expected, false, now).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return Err(BearerError::InvalidDpopProof("a DPoP-scheme request needs a DPoP header with a proof".into()));
        }
        Err(ProofRefusal::Dpop(crate::oauth::dpop::DpopError::Invalid(m))) => {
            return Err(BearerError::InvalidDpopProof(m));
        }
        Err(ProofRefusal::Dpop(crate::oauth::dpop::DpopError::UseNonce)) => {
            return Err(BearerError::InvalidDpopProof("the DPoP proof lacks a valid nonce".into()));
        }
        Err(ProofRefusal::Store(e)) => {
            tracing::error!(error = %e, "store failure remembering a DPoP proof");
            return Err(BearerError::Internal);
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
    if !state.holder_exists(&claims) {
        return Err(BearerError::InvalidToken("the client this token was issued to no longer exists".into()));
    }
    let overrides = |client_id: &str| state.client_override(client_id);
    let store_failure = |e: crate::store::StoreError| crate::service::error::bearer_store("checking a bearer token", e);
    // SPEC 14: a user token is judged by the policy as its user's groups
    // tighten it.
    let history = if claims.fid.is_some() {
        state.user_history(&claims.sub).await.map_err(store_failure)?
    } else {
        state.history()
    };
    let live =
        descends_from_live_family(&state.store, &history, overrides, &claims, now).await.map_err(store_failure)?;
    if !live {
        return Err(BearerError::InvalidToken("the session of this token has ended or was revoked".into()));
    }
    Ok(claims)
}

/// The permissions `claims` may act with now (SPEC 4): those the token
/// carries, intersected with what its holder holds at this moment — the
/// user for a user token, the client for a client-credentials token — and
/// only while the token's client is still allowed the `admin` scope. So
/// removing a permission, disabling or deleting the user, or deleting the
/// client applies to the very next request, whatever tokens are live.
pub async fn current_permissions(state: &AppState, claims: &AccessClaims) -> Result<BTreeSet<Permission>, BearerError> {
    let carried: BTreeSet<Permission> =
        claims.permissions.iter().flatten().filter_map(|p| Permission::parse(p)).collect();
    if carried.is_empty() {
        return Ok(carried);
    }
    let Some(client) = state.clients.get(&claims.client_id) else { return Ok(BTreeSet::new()) };
    if !client.scopes.contains(ADMIN_SCOPE) {
        return Ok(BTreeSet::new());
    }
    let held = if claims.sid.is_some() {
        let user = state.user(&claims.sub).await.map_err(|e| {
            tracing::error!(error = %e, "store failure reading a token's user");
            BearerError::Internal
        })?;
        user.map(|u| u.permissions).unwrap_or_default()
    } else {
        client.permissions.clone()
    };
    Ok(meet(&carried, &held))
}

/// The permissions implied by both sets (`system:administer` implies every
/// other): a token carrying `system:administer` whose holder now has only
/// `users:edit` acts with `users:edit`.
fn meet(a: &BTreeSet<Permission>, b: &BTreeSet<Permission>) -> BTreeSet<Permission> {
    let implies =
        |set: &BTreeSet<Permission>, p: &Permission| set.contains(p) || set.contains(&Permission::SystemAdminister);
    a.union(b).filter(|p| implies(a, p) && implies(b, p)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_acts_with_what_both_it_and_its_holder_imply() {
        let set = |ps: &[Permission]| ps.iter().cloned().collect::<BTreeSet<_>>();
        let admin = set(&[Permission::SystemAdminister]);
        let helpdesk = set(&[Permission::UsersEdit]);
        assert_eq!(meet(&admin, &helpdesk), helpdesk);
        assert_eq!(meet(&helpdesk, &admin), helpdesk);
        assert_eq!(meet(&admin, &admin), admin);
        assert_eq!(meet(&admin, &set(&[])), set(&[]));
        assert_eq!(meet(&set(&[]), &admin), set(&[]));
    }
}
