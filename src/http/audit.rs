//! `GET /admin/audit` (SPEC 4, 9; `system:administer` or `users:edit`): the
//! audit log, newest first, paged; the rules live in `crate::service::audit`.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::api::Caller;
use crate::oauth::client::Permission;
use crate::service::audit::{self, Filter, PageRequest};
use crate::service::{AppState, ServiceError};

/// `GET /admin/audit?limit=&before=&kind=&user=`.
pub async fn list(State(state): State<AppState>, caller: Caller, query: RawQuery) -> Result<Response, ServiceError> {
    caller.require(Permission::UsersEdit)?;
    let page = PageRequest::parse(query.0.as_deref())?;
    let filter = Filter::parse(query.0.as_deref())?;
    let body = audit::page(&state, page, &filter).await?;
    Ok(([(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))], Json(body)).into_response())
}
