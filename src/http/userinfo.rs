//! `GET|POST /userinfo` (OIDC Core 5.3): authenticate the access token
//! (header, or RFC 6750 2.2 form body), call [`service::userinfo::userinfo`].

use axum::Json;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};

use super::bearer::{self, Bearer};
use super::token::no_store;
use crate::service::{self, AppState, ServiceError};

pub async fn get(State(state): State<AppState>, Bearer(claims): Bearer) -> Result<Response, ServiceError> {
    let body = service::userinfo::userinfo(&state, &claims).await?;
    Ok(no_store(Json(body).into_response()))
}

pub async fn post(State(state): State<AppState>, req: Request) -> Result<Response, ServiceError> {
    let claims = bearer::from_header_or_form(&state, req).await.map_err(ServiceError::Bearer)?;
    let body = service::userinfo::userinfo(&state, &claims).await?;
    Ok(no_store(Json(body).into_response()))
}
