//! `POST /introspect` (RFC 7662): extract the form, call
//! [`service::introspect::introspect`], answer its JSON uncached.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::form::OAuthForm;
use super::token::no_store;
use crate::service::{self, AppState, ClientRequest, ServiceError};

pub async fn introspect(
    State(state): State<AppState>,
    form: Result<OAuthForm, ServiceError>,
) -> Result<Response, ServiceError> {
    let form = form?;
    let request =
        ClientRequest { params: &form.params, authorization: form.authorization.as_deref(), remote: &form.remote };
    let body = service::introspect::introspect(&state, request, state.now()).await?;
    Ok(no_store(Json(body).into_response()))
}
