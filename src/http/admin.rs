//! `/admin/users`, `/admin/clients`, `/admin/keys` and the settings explain
//! and preview (SPEC 10): extract, check the permission, call the one use
//! case in `crate::service`, map its result.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::api::{ApiJson, Caller};
use super::token::no_store;
use crate::oauth::client::Permission;
use crate::oauth::client_spec::ClientSpec;
use crate::service::clients::{ClientInput, MIN_SECRET_CHARS};
use crate::service::users::UserPatch;
use crate::service::{self, Actor, AppState, ServiceError};

pub fn actor(caller: &Caller) -> Actor {
    Actor::new(caller.actor(), &caller.permissions)
}

fn json(status: StatusCode, body: impl serde::Serialize) -> Response {
    no_store((status, Json(body)).into_response())
}

/// The request body as a JSON object.
pub fn object(body: Result<ApiJson<Value>, ServiceError>) -> Result<Map<String, Value>, ServiceError> {
    match body?.0 {
        Value::Object(m) => Ok(m),
        _ => Err(ServiceError::invalid("the body must be a JSON object")),
    }
}

/// The query parameters, each at most once.
fn query(raw: Option<&str>, known: &[&str]) -> Result<Vec<(String, String)>, ServiceError> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    for (i, (k, _)) in pairs.iter().enumerate() {
        if !known.contains(&k.as_str()) {
            return Err(ServiceError::invalid(format!("unknown parameter {k:?}; known: {}", known.join(", "))));
        }
        if pairs[..i].iter().any(|(other, _)| other == k) {
            return Err(ServiceError::invalid(format!("the {k} parameter is given more than once")));
        }
    }
    Ok(pairs)
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

// ---- users ----

/// `GET /admin/users?query=&page=`.
pub async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    raw: RawQuery,
) -> Result<Response, ServiceError> {
    caller.require(Permission::UsersEdit)?;
    let pairs = query(raw.0.as_deref(), &["query", "page"])?;
    let page = match param(&pairs, "page") {
        None => 1,
        Some(p) => p
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ServiceError::invalid(format!("page must be a whole number from 1, not {p:?}")))?,
    };
    Ok(json(StatusCode::OK, service::users::list(&state, param(&pairs, "query"), page).await?))
}

/// `POST /admin/users`.
pub async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<ApiJson<Value>, ServiceError>,
) -> Result<Response, ServiceError> {
    caller.require(Permission::UsersEdit)?;
    let body = object(body)?;
    let new: service::users::NewUser =
        serde_json::from_value(Value::Object(body)).map_err(|e| ServiceError::invalid(e.to_string()))?;
    let user = service::users::create(&state, &actor(&caller), new, state.now()).await?;
    Ok(json(StatusCode::CREATED, user))
}

/// `GET /admin/users/{username}`.
pub async fn show_user(
    State(state): State<AppState>,
    caller: Caller,
    username: Result<Path<String>, PathRejection>,
) -> Result<Response, ServiceError> {
    caller.require(Permission::UsersEdit)?;
    let Path(username) = username?;
    Ok(json(StatusCode::OK, service::users::show(&state, &username).await?))
}

/// `PATCH /admin/users/{username}`.
pub async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    username: Result<Path<String>, PathRejection>,
    body: Result<ApiJson<Value>, ServiceError>,
) -> Result<Response, ServiceError> {
    caller.require(Permission::UsersEdit)?;
    let Path(username) = username?;
    let body = object(body)?;
    let actor = actor(&caller);
    let user = service::users::editable(&state, &actor, &username).await?;
    let patch = user_patch(&body)?;
    Ok(json(StatusCode::OK, service::users::update(&state, &actor, user, patch, state.now()).await?))
}

/// A PATCH body: any of `email`, `name` (null clears), `password` or
/// `password_hash`, `permissions`, `disabled`, `groups`.
fn user_patch(body: &Map<String, Value>) -> Result<UserPatch, ServiceError> {
    let text = |field: &str, v: &Value| -> Result<Option<String>, ServiceError> {
        match v {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            other => Err(ServiceError::invalid(format!("{field}: must be a string or null, not {other}"))),
        }
    };
    let mut patch = UserPatch::default();
    for (field, value) in body {
        match field.as_str() {
            "email" => patch.email = Some(text(field, value)?),
            "name" => patch.name = Some(text(field, value)?),
            "password" => patch.password = text(field, value)?,
            "password_hash" => patch.password_hash = text(field, value)?,
            "permissions" => {
                let raw: Vec<String> = serde_json::from_value(value.clone())
                    .map_err(|_| ServiceError::invalid("permissions: must be a list of strings"))?;
                patch.permissions = Some(raw);
            }
            "groups" => {
                let raw: Vec<String> = serde_json::from_value(value.clone())
                    .map_err(|_| ServiceError::invalid("groups: must be a list of group names"))?;
                patch.groups = Some(raw);
            }
            "disabled" => {
                let disabled = value
                    .as_bool()
                    .ok_or_else(|| ServiceError::invalid(format!("disabled: must be true or false, not {value}")))?;
                patch.disabled = Some(disabled);
            }
            other => {
                return Err(ServiceError::invalid(format!(
                    "unknown field {other:?}; known fields: email, name, password, password_hash, permissions, disabled, groups"
                )));
            }
        }
    }
    Ok(patch)
}

/// `DELETE /admin/users/{username}`.
pub async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    username: Result<Path<String>, PathRejection>,
) -> Result<Response, ServiceError> {
    caller.require(Permission::UsersEdit)?;
    let Path(username) = username?;
    service::users::delete(&state, &actor(&caller), &username, state.now()).await?;
    Ok(no_store(StatusCode::NO_CONTENT.into_response()))
}

// ---- clients ----

/// `GET /admin/clients`.
pub async fn list_clients(State(state): State<AppState>, caller: Caller) -> Result<Response, ServiceError> {
    caller.require(Permission::SystemAdminister)?;
    Ok(json(StatusCode::OK, serde_json::json!({ "clients": service::clients::list(&state) })))
}

/// `POST /admin/clients`.
pub async fn create_client(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<ApiJson<Value>, ServiceError>,
) -> Result<Response, ServiceError> {
    caller.require(Permission::SystemAdminister)?;
    let body = object(body)?;
    let created = service::clients::create(&state, &actor(&caller), client_input(body)?, state.now()).await?;
    Ok(json(StatusCode::CREATED, created))
}

/// `GET /admin/clients/{id}`.
pub async fn show_client(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ServiceError> {
    caller.require(Permission::SystemAdminister)?;
    let Path(id) = id?;
    Ok(json(StatusCode::OK, service::clients::show(&state, &id)?))
}

/// `PUT /admin/clients/{id}`.
pub async fn replace_client(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
    body: Result<ApiJson<Value>, ServiceError>,
) -> Result<Response, ServiceError> {
    caller.require(Permission::SystemAdminister)?;
    let Path(id) = id?;
    let mut body = object(body)?;
    let old = service::clients::editable(&state, &id).await?;
    match body.get("id") {
        None => {
            body.insert("id".into(), Value::String(id.clone()));
        }
        Some(Value::String(s)) if *s == id => {}
        Some(other) => {
            return Err(ServiceError::invalid(format!(
                "id: the body names {other}, the path {id:?}; a client id cannot change"
            )));
        }
    }
    let input = client_input(body)?;
    Ok(json(StatusCode::OK, service::clients::replace(&state, &actor(&caller), old, input, state.now()).await?))
}

/// A client's settings and an optional `secret` from a request body.
fn client_input(mut body: Map<String, Value>) -> Result<ClientInput, ServiceError> {
    let secret = match body.remove("secret") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => return Err(ServiceError::invalid(format!("secret: must be a string, not {other}"))),
    };
    if let Some(s) = &secret
        && s.chars().count() < MIN_SECRET_CHARS
    {
        return Err(ServiceError::invalid(format!(
            "secret: must be at least {MIN_SECRET_CHARS} characters (or leave it out to have one generated)"
        )));
    }
    let spec: ClientSpec =
        serde_json::from_value(Value::Object(body)).map_err(|e| ServiceError::invalid(e.to_string()))?;
    Ok(ClientInput { spec, secret })
}

/// `DELETE /admin/clients/{id}`.
pub async fn delete_client(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ServiceError> {
    caller.require(Permission::SystemAdminister)?;
    let Path(id) = id?;
    service::clients::delete(&state, &actor(&caller), &id, state.now()).await?;
    Ok(no_store(StatusCode::NO_CONTENT.into_response()))
}

/// `POST /admin/clients/{id}/secret`.
pub async fn rotate_client_secret(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ServiceError> {
    caller.require(Permission::SystemAdminister)?;
    let Path(id) = id?;
    let rotated = service::clients::rotate_secret(&state, &actor(&caller), &id, state.now()).await?;
    Ok(json(StatusCode::OK, serde_json::json!({ "client_id": id, "client_secret": rotated.client_secret })))
}

// ---- keys ----

/// `GET /admin/keys`.
pub async fn list_keys(State(state): State<AppState>, caller: Caller) -> Result<Response, ServiceError> {
    caller.require(Permission::SystemAdminister)?;
    Ok(json(StatusCode::OK, serde_json::json!({ "keys": service::keys::list(&state, state.now()).await? })))
}

/// `POST /admin/keys/rotate`.
pub async fn rotate_key(State(state): State<AppState>, caller: Caller) -> Result<Response, ServiceError> {
    caller.require(Permission::SystemAdminister)?;
    let keys = service::keys::rotate(&state, &actor(&caller), state.now()).await?;
    Ok(json(StatusCode::CREATED, serde_json::json!({ "keys": keys })))
}

// ---- settings explain ----

/// `GET /admin/settings/session/explain?client_id=&username=&remember_me=`.
pub async fn explain(State(state): State<AppState>, caller: Caller, raw: RawQuery) -> Result<Response, ServiceError> {
    caller.require(Permission::SystemAdminister)?;
    let pairs = query(raw.0.as_deref(), &["client_id", "username", "remember_me"])?;
    let remember_me = match param(&pairs, "remember_me") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(ServiceError::invalid(format!("remember_me must be true or false, not {other:?}"))),
    };
    let explanation =
        service::explain::explain(&state, param(&pairs, "client_id"), param(&pairs, "username"), remember_me).await?;
    Ok(json(StatusCode::OK, explanation))
}
