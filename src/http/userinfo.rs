//! `GET|POST /userinfo` (OIDC Core 5.3): the signed-in user's claims, by the
//! scopes of the access token.

use axum::Json;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};

use super::bearer::{self, Bearer, BearerError};
use super::token::no_store;
use crate::service::{AppState, ServiceError};
use crate::token::claims::AccessClaims;

pub async fn get(State(state): State<AppState>, Bearer(claims): Bearer) -> Result<Response, ServiceError> {
    respond(&state, &claims).await
}

pub async fn post(State(state): State<AppState>, req: Request) -> Result<Response, ServiceError> {
    let claims = bearer::from_header_or_form(&state, req).await.map_err(ServiceError::Bearer)?;
    respond(&state, &claims).await
}

async fn respond(state: &AppState, claims: &AccessClaims) -> Result<Response, ServiceError> {
    let scopes: Vec<&str> = claims.scope.split(' ').collect();
    if !scopes.contains(&"openid") {
        return Err(ServiceError::Bearer(BearerError::InsufficientScope(
            "userinfo needs a token with the openid scope".into(),
        )));
    }
    let user = match &claims.sid {
        Some(_) => state.user(&claims.sub).await.map_err(|_| ServiceError::Bearer(BearerError::Internal))?,
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
    Ok(no_store(Json(body).into_response()))
}
