//! `GET|PUT|DELETE /admin/settings/session` (SPEC 3, 4): the effective session
//! policy with each value's source; changes through the admin API win over
//! file and environment, are validated by the same rules, are persisted, and
//! apply to live sessions at their next check. The ceiling comes from file or
//! environment only. Requires `system:administer`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::api::{ApiError, ApiJson, Caller};
use super::state::AppState;
use super::token::no_store;
use crate::audit::AuditEvent;
use crate::duration::Secs;
use crate::oauth::client::Permission;
use crate::policy::{IdleTimeout, PolicyKey, PolicyLayer, PolicyLayers, PolicySources, SessionPolicy};
use crate::store::Store;

/// The JSON view: every key with its effective value (integer seconds, or
/// "off" for an idle timeout), and `sources`.
pub fn view(policy: &SessionPolicy, sources: &PolicySources) -> Value {
    let idle = |t: IdleTimeout| match t {
        IdleTimeout::Off => Value::from("off"),
        IdleTimeout::After(d) => Value::from(d.as_secs()),
    };
    let mut out = Map::new();
    out.insert("idle_timeout".into(), idle(policy.idle_timeout));
    out.insert("max_lifetime".into(), policy.max_lifetime.as_secs().into());
    out.insert("remember_me_idle_timeout".into(), idle(policy.remember_me_idle_timeout));
    out.insert("remember_me_max_lifetime".into(), policy.remember_me_max_lifetime.as_secs().into());
    out.insert("access_token_ttl".into(), policy.access_token_ttl().as_secs().into());
    out.insert("refresh_reuse_grace".into(), policy.refresh_reuse_grace.as_secs().into());
    out.insert("max_lifetime_ceiling".into(), policy.max_lifetime_ceiling.as_secs().into());
    let src: Map<String, Value> = PolicyKey::ALL
        .iter()
        .map(|k| (k.name().to_owned(), serde_json::to_value(sources.of(*k)).unwrap_or(Value::Null)))
        .collect();
    out.insert("sources".into(), Value::Object(src));
    Value::Object(out)
}

/// Apply a PUT body to the admin layer: each known key set to integer
/// seconds (or "off" for idle timeouts), or `null` to drop the admin value.
pub fn merge(mut layer: PolicyLayer, body: &Map<String, Value>) -> Result<PolicyLayer, ApiError> {
    for (field, value) in body {
        let Some(key) = PolicyKey::ALL.into_iter().find(|k| k.name() == field) else {
            let known: Vec<&str> = PolicyKey::ALL.iter().map(|k| k.name()).collect();
            return Err(ApiError::bad_request(format!("unknown field {field:?}; known fields: {}", known.join(", "))));
        };
        let secs = |v: &Value| -> Result<Secs, ApiError> {
            v.as_u64().map(Secs::new).ok_or_else(|| {
                ApiError::bad_request(format!("{field} must be a whole number of seconds (>= 0), not {v}"))
            })
        };
        let idle = |v: &Value| -> Result<IdleTimeout, ApiError> {
            if v.as_str() == Some("off") { Ok(IdleTimeout::Off) } else { secs(v).map(IdleTimeout::After) }
        };
        let clear = value.is_null();
        match key {
            PolicyKey::IdleTimeout => layer.idle_timeout = if clear { None } else { Some(idle(value)?) },
            PolicyKey::RememberMeIdleTimeout => {
                layer.remember_me_idle_timeout = if clear { None } else { Some(idle(value)?) }
            }
            PolicyKey::MaxLifetime => layer.max_lifetime = if clear { None } else { Some(secs(value)?) },
            PolicyKey::RememberMeMaxLifetime => {
                layer.remember_me_max_lifetime = if clear { None } else { Some(secs(value)?) }
            }
            PolicyKey::AccessTokenTtl => layer.access_token_ttl = if clear { None } else { Some(secs(value)?) },
            PolicyKey::RefreshReuseGrace => layer.refresh_reuse_grace = if clear { None } else { Some(secs(value)?) },
            PolicyKey::MaxLifetimeCeiling => layer.max_lifetime_ceiling = if clear { None } else { Some(secs(value)?) },
        }
        if !clear {
            check_admin_floor(key, &layer)?;
        }
    }
    Ok(layer)
}

/// The shortest value the admin API accepts for `key`, if it has a floor.
/// A few seconds would sign everyone out at once, the admin included, with
/// no way back through the API; file and environment still take any value
/// above zero (tests, demos).
pub fn admin_floor(key: PolicyKey) -> Option<Secs> {
    match key {
        PolicyKey::IdleTimeout
        | PolicyKey::MaxLifetime
        | PolicyKey::RememberMeIdleTimeout
        | PolicyKey::RememberMeMaxLifetime => Some(Secs::minutes(5)),
        PolicyKey::AccessTokenTtl => Some(Secs::minutes(1)),
        PolicyKey::RefreshReuseGrace | PolicyKey::MaxLifetimeCeiling => None,
    }
}

/// Refuse an admin value of `key` in `layer` below [`admin_floor`].
fn check_admin_floor(key: PolicyKey, layer: &PolicyLayer) -> Result<(), ApiError> {
    let Some(floor) = admin_floor(key) else { return Ok(()) };
    let idle = |t: Option<IdleTimeout>| match t {
        Some(IdleTimeout::After(d)) => Some(d),
        Some(IdleTimeout::Off) | None => None,
    };
    let value = match key {
        PolicyKey::IdleTimeout => idle(layer.idle_timeout),
        PolicyKey::RememberMeIdleTimeout => idle(layer.remember_me_idle_timeout),
        PolicyKey::MaxLifetime => layer.max_lifetime,
        PolicyKey::RememberMeMaxLifetime => layer.remember_me_max_lifetime,
        PolicyKey::AccessTokenTtl => layer.access_token_ttl,
        PolicyKey::RefreshReuseGrace | PolicyKey::MaxLifetimeCeiling => None,
    };
    match value {
        Some(v) if v < floor => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_setting",
            format!(
                "{} must be at least {} seconds ({floor}) when set through the admin API, not {}; \
                 shorter values are for the config file or environment (tests, demos)",
                key.name(),
                floor.as_secs(),
                v.as_secs()
            ),
        )),
        _ => Ok(()),
    }
}

pub async fn get(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Permission::SystemAdminister)?;
    let policy = state.policy();
    Ok(no_store(Json(view(&policy.0, &policy.1)).into_response()))
}

pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<ApiJson<Value>, ApiError>,
) -> Result<Response, ApiError> {
    caller.require(Permission::SystemAdminister)?;
    let ApiJson(body) = body?;
    let Value::Object(body) = body else {
        return Err(ApiError::bad_request("the body must be a JSON object of settings"));
    };
    change(&state, &caller, |admin| merge(admin, &body), "settings_changed").await
}

/// `POST /admin/settings/session/preview`: the body a PUT takes, refused the
/// same way, or what the change would do to live sessions. Nothing changes.
pub async fn preview(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<ApiJson<Value>, ApiError>,
) -> Result<Response, ApiError> {
    caller.require(Permission::SystemAdminister)?;
    let ApiJson(body) = body?;
    let Value::Object(body) = body else {
        return Err(ApiError::bad_request("the body must be a JSON object of settings"));
    };
    let old_admin = state.store.admin_policy().map_err(|e| ApiError::internal("previewing session settings", e))?;
    let (proposed, _) = proposed(&state, merge(old_admin, &body)?)?;
    let preview = crate::admin::policy::preview(&state, &proposed, state.now())?;
    Ok(no_store(Json(preview).into_response()))
}

/// The policy in force with `admin` as the admin layer, validated as a PUT is.
fn proposed(state: &AppState, admin: PolicyLayer) -> Result<(SessionPolicy, PolicySources), ApiError> {
    let layers = PolicyLayers { admin, ..state.config.policy_layers.clone() };
    layers
        .resolve()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_setting", format!("{e} (field {})", e.key())))
}

pub async fn delete(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Permission::SystemAdminister)?;
    change(&state, &caller, |_| Ok(PolicyLayer::default()), "settings_reset").await
}

/// Validate the new admin layer against the file and environment layers,
/// persist it and the policy history, then put it in force.
async fn change(
    state: &AppState,
    caller: &Caller,
    update: impl FnOnce(PolicyLayer) -> Result<PolicyLayer, ApiError>,
    kind: &str,
) -> Result<Response, ApiError> {
    let _serialised = state.settings_lock.lock().await;
    let now = state.now();
    let store_err = |e| ApiError::internal("changing session settings", e);
    let old_admin = state.store.admin_policy().map_err(store_err)?;
    let admin = update(old_admin.clone())?;
    let resolved = proposed(state, admin.clone())?;
    let before = state.policy();
    let mut history = (*state.history()).clone();
    history.change(now, resolved.0.clone());
    state.store.set_admin_policy(&admin).await.map_err(store_err)?;
    state.store.set_policy_history(&history).await.map_err(store_err)?;
    let new_view = view(&resolved.0, &resolved.1);
    let event = AuditEvent::new(now, kind, caller.actor(), "settings")
        .details(serde_json::json!({ "old": view(&before.0, &before.1), "new": new_view }));
    event.log();
    state.store.append_audit(&event).await.map_err(store_err)?;
    state.set_policy(resolved, history);
    Ok(no_store(Json(new_view).into_response()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn merge_sets_clears_and_names_bad_fields() {
        let layer =
            merge(PolicyLayer::default(), &body(serde_json::json!({"idle_timeout": 900, "max_lifetime": 3600})))
                .expect("valid");
        assert_eq!(layer.idle_timeout, Some(IdleTimeout::After(Secs::new(900))));
        let layer =
            merge(layer, &body(serde_json::json!({"idle_timeout": "off", "max_lifetime": null}))).expect("valid");
        assert_eq!(layer.idle_timeout, Some(IdleTimeout::Off));
        assert_eq!(layer.max_lifetime, None);
        let e = merge(PolicyLayer::default(), &body(serde_json::json!({"idle": 1}))).expect_err("unknown");
        assert!(e.message.contains("unknown field \"idle\""), "{}", e.message);
        let e = merge(PolicyLayer::default(), &body(serde_json::json!({"max_lifetime": "12h"}))).expect_err("type");
        assert!(e.message.contains("max_lifetime must be a whole number of seconds"), "{}", e.message);
        let e = merge(PolicyLayer::default(), &body(serde_json::json!({"max_lifetime": -5}))).expect_err("negative");
        assert!(e.message.contains("max_lifetime"), "{}", e.message);
    }

    #[test]
    fn the_admin_api_refuses_lockout_values() {
        let put = |v: Value| merge(PolicyLayer::default(), &body(v));
        for key in ["idle_timeout", "max_lifetime", "remember_me_idle_timeout", "remember_me_max_lifetime"] {
            let e = put(serde_json::json!({ key: 299 })).expect_err("under 5 minutes");
            assert_eq!(e.error, "invalid_setting");
            assert!(
                e.message.starts_with(&format!(
                    "{key} must be at least 300 seconds (5m) when set through the admin API, not 299"
                )),
                "{}",
                e.message
            );
            assert!(put(serde_json::json!({ key: 300 })).is_ok(), "{key} at the floor");
        }
        let e = put(serde_json::json!({"access_token_ttl": 2})).expect_err("under 1 minute");
        assert!(e.message.starts_with("access_token_ttl must be at least 60 seconds (1m)"), "{}", e.message);
        assert!(put(serde_json::json!({"access_token_ttl": 60})).is_ok());
        assert!(put(serde_json::json!({"idle_timeout": "off", "refresh_reuse_grace": 0})).is_ok(), "no floor");
        assert!(put(serde_json::json!({"idle_timeout": null})).is_ok(), "clearing is always allowed");
    }

    #[test]
    fn the_view_shows_values_and_sources() {
        let (p, sources) = PolicyLayers::default().resolve().expect("defaults");
        let v = view(&p, &sources);
        assert_eq!(v["idle_timeout"], 1800);
        assert_eq!(v["access_token_ttl"], 1800);
        assert_eq!(v["sources"]["max_lifetime"], "default");
    }
}
