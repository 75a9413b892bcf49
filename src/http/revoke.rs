//! `POST /revoke` (RFC 7009): extract the form, call
//! [`service::revoke::revoke`], answer 200 with no body.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::form::OAuthForm;
use super::token::no_store;
use crate::service::{self, AppState, ClientRequest, ServiceError};

pub async fn revoke(
    State(state): State<AppState>,
    form: Result<OAuthForm, ServiceError>,
) -> Result<Response, ServiceError> {
    let form = form?;
    let request =
        ClientRequest { params: &form.params, authorization: form.authorization.as_deref(), remote: &form.remote };
    service::revoke::revoke(&state, request, state.now()).await?;
    Ok(no_store(StatusCode::OK.into_response()))
}
