//! `GET|POST /userinfo` (OIDC Core 5.3): the signed-in user's claims, by the
//! scopes of the (already verified) access token.

use super::{AppState, BearerError, ServiceError};
use crate::token::claims::AccessClaims;

/// The claims of the user `claims` were issued to, as the token's scopes
/// allow: `sub`, with `profile` the name, with `email` the address.
pub async fn userinfo(state: &AppState, claims: &AccessClaims) -> Result<serde_json::Value, ServiceError> {
    let scopes: Vec<&str> = claims.scope.split(' ').collect();
    if !scopes.contains(&"openid") {
        return Err(ServiceError::Bearer(BearerError::InsufficientScope(
            "userinfo needs a token with the openid scope".into(),
        )));
    }
    let user = match &claims.sid {
        Some(_) => state.user(&claims.sub).await.map_err(|e| {
            ServiceError::Bearer(crate::service::error::bearer_store("reading a user for /userinfo", e))
        })?,
        None => None,
    };
    let Some(user) = user else {
        return Err(ServiceError::Bearer(BearerError::InvalidToken("the token does not belong to a user".into())));
    };
    let mut body = serde_json::json!({ "sub": user.username });
    if scopes.contains(&"profile") {
        body["preferred_username"] = user.username.clone().into();
        if let Some(name) = &user.name {
            body["name"] = name.clone().into();
        }
    }
    if scopes.contains(&"email")
        && let Some(email) = &user.email
    {
        body["email"] = email.clone().into();
    }
    Ok(body)
}
