//! `POST /revoke` (RFC 7009): a client revokes one of its own tokens; a
//! refresh token or an access token kills its whole family (SPEC 5).

use super::{AppState, ClientRequest, ServiceError};
use crate::clock::UnixTime;
use crate::oauth::OAuthError;
use crate::oauth::error::ErrorCode;
use crate::service::lookup::Found;

/// Revoke the `token` of `request`'s client (idempotent). An unknown or
/// invalid token is not an error (RFC 7009 2.2); a token issued to another
/// client is refused (2.1), and so are tokens that have no family to kill.
pub async fn revoke(state: &AppState, request: ClientRequest<'_>, now: UnixTime) -> Result<(), ServiceError> {
    let client = request.authenticate(state, now).await?;
    let token = request.params.require("token")?;
    let keys = state.keys();
    let found = state
        .lookup(&keys, now)
        .find(&state.store, token, request.params.get("token_type_hint"))
        .await
        .map_err(store_error)?;
    let not_yours = || {
        // RFC 7009 2.1: only the client the token was issued to may revoke it.
        OAuthError::new(ErrorCode::UnauthorizedClient, format!("the token was not issued to client {:?}", client.id))
    };
    let family_id = match found {
        // RFC 7009 2.2: an invalid or unknown token is not an error.
        Found::Unknown => None,
        Found::Refresh { family, .. } => {
            if family.client_id != client.id {
                return Err(not_yours().into());
            }
            Some(family.id)
        }
        Found::Access(claims) => {
            if claims.client_id != client.id {
                return Err(not_yours().into());
            }
            if claims.act.is_some() {
                // Revoking it would kill the user's whole family, held by
                // another client; an exchanged token dies with its subject.
                return Err(OAuthError::new(
                    ErrorCode::UnsupportedTokenType,
                    "an exchanged token cannot be revoked on its own; it expires at its exp and dies with the subject's session",
                )
                .into());
            }
            match claims.fid {
                Some(fid) => Some(fid),
                None => {
                    return Err(OAuthError::new(
                        ErrorCode::UnsupportedTokenType,
                        "client-credentials access tokens cannot be revoked; they expire at their exp",
                    )
                    .into());
                }
            }
        }
    };
    if let Some(fid) = family_id {
        state
            .revocation(now)
            .family(&fid, &format!("client:{}", client.id), "revoked_by_client")
            .await
            .map_err(store_error)?;
    }
    Ok(())
}

fn store_error(e: crate::store::StoreError) -> ServiceError {
    crate::service::error::oauth_store("/revoke", e).into()
}
