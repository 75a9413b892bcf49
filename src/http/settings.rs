//! `GET|PUT|DELETE /admin/settings/session` and
//! `POST /admin/settings/session/preview` (SPEC 3, 4, 10): extract, check
//! `system:administer`, call the use case in `crate::service::settings`.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::admin::actor;
use super::api::{ApiJson, Caller};
use super::token::no_store;
use crate::duration::Secs;
use crate::oauth::client::Permission;
use crate::policy::{POLICY_KEYS, PolicyValue};
use crate::service::settings::{self, PolicyChange};
use crate::service::{AppState, ServiceError};

pub async fn get(State(state): State<AppState>, caller: Caller) -> Result<Response, ServiceError> {
    caller.require(Permission::SystemAdminister)?;
    Ok(no_store(Json(settings::current(&state)).into_response()))
}

pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<ApiJson<Value>, ServiceError>,
) -> Result<Response, ServiceError> {
    caller.require(Permission::SystemAdminister)?;
    let change = policy_change(&settings_object(body)?)?;
    let view = settings::update(&state, &actor(&caller), &change, state.now()).await?;
    Ok(no_store(Json(view).into_response()))
}

/// `POST /admin/settings/session/preview`: the body a PUT takes, refused the
/// same way, or what the change would do to live sessions. Nothing changes.
pub async fn preview(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<ApiJson<Value>, ServiceError>,
) -> Result<Response, ServiceError> {
    caller.require(Permission::SystemAdminister)?;
    let change = policy_change(&settings_object(body)?)?;
    let preview = settings::preview(&state, &change, state.now()).await?;
    Ok(no_store(Json(preview).into_response()))
}

pub async fn delete(State(state): State<AppState>, caller: Caller) -> Result<Response, ServiceError> {
    caller.require(Permission::SystemAdminister)?;
    let view = settings::reset(&state, &actor(&caller), state.now()).await?;
    Ok(no_store(Json(view).into_response()))
}

fn settings_object(body: Result<ApiJson<Value>, ServiceError>) -> Result<Map<String, Value>, ServiceError> {
    match body?.0 {
        Value::Object(m) => Ok(m),
        _ => Err(ServiceError::invalid("the body must be a JSON object of settings")),
    }
}

/// A PUT or preview body: each known key set to integer seconds (or "off"
/// for idle timeouts), or `null` to drop the admin value.
pub fn policy_change(body: &Map<String, Value>) -> Result<PolicyChange, ServiceError> {
    let mut change = PolicyChange::default();
    for (field, value) in body {
        let Some(def) = POLICY_KEYS.iter().find(|d| d.name == field) else {
            let known: Vec<&str> = POLICY_KEYS.iter().map(|d| d.name).collect();
            return Err(ServiceError::invalid(format!("unknown field {field:?}; known fields: {}", known.join(", "))));
        };
        let new = if value.is_null() {
            None
        } else if def.accepts_off() && value.as_str() == Some("off") {
            Some(PolicyValue::Off)
        } else {
            let secs = value.as_u64().map(Secs::new).ok_or_else(|| {
                ServiceError::invalid(format!("{field} must be a whole number of seconds (>= 0), not {value}"))
            })?;
            Some(PolicyValue::Secs(secs))
        };
        change.set(def.key, new);
    }
    Ok(change)
}
