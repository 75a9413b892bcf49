//! `GET|PUT|DELETE /admin/settings/session` and
//! `POST /admin/settings/session/preview` (SPEC 3, 4, 10): extract, check
//! `system:administer`, call the use case in `crate::service::settings`.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::admin::actor;
use super::api::{ApiJson, Caller};
use super::token::no_store;
use crate::duration::Secs;
use crate::oauth::client::Permission;
use crate::policy::{GroupPolicy, POLICY_KEYS};
use crate::service::groups;
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
        let new = if value.is_null() { None } else { Some(def.from_json(value).map_err(ServiceError::invalid)?) };
        change.set(def.key, new);
    }
    Ok(change)
}

// ---- Group policies (SPEC 14) ----

/// `GET /admin/settings/session/groups`: every group, by name.
pub async fn list_groups(State(state): State<AppState>, caller: Caller) -> Result<Response, ServiceError> {
    caller.require(Permission::SystemAdminister)?;
    Ok(no_store(Json(serde_json::json!({ "groups": groups::list(&state) })).into_response()))
}

/// `GET /admin/settings/session/groups/{name}`.
pub async fn get_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, ServiceError> {
    caller.require(Permission::SystemAdminister)?;
    Ok(no_store(Json(groups::show(&state, &name)?).into_response()))
}

/// `PUT /admin/settings/session/groups/{name}`: the group's values, each
/// integer seconds (`max_sessions` a count); a key left out is the global
/// policy's.
pub async fn put_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    body: Result<ApiJson<Value>, ServiceError>,
) -> Result<Response, ServiceError> {
    caller.require(Permission::SystemAdminister)?;
    let g = group_body(&settings_object(body)?)?;
    let view = groups::put(&state, &actor(&caller), &name, g, state.now()).await?;
    Ok(no_store(Json(view).into_response()))
}

/// `DELETE /admin/settings/session/groups/{name}`: 204, or 200 with the
/// config file's group that applies again.
pub async fn delete_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, ServiceError> {
    caller.require(Permission::SystemAdminister)?;
    Ok(match groups::delete(&state, &actor(&caller), &name, state.now()).await? {
        Some(view) => no_store(Json(view).into_response()),
        None => axum::http::StatusCode::NO_CONTENT.into_response(),
    })
}

/// `POST /admin/settings/session/groups/{name}/preview`: the body a PUT
/// takes (or `{"delete": true}`), refused the same way, or what it would do
/// to the members' live sessions. Nothing changes.
pub async fn preview_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    body: Result<ApiJson<Value>, ServiceError>,
) -> Result<Response, ServiceError> {
    caller.require(Permission::SystemAdminister)?;
    let body = settings_object(body)?;
    let g =
        if body.get("delete") == Some(&Value::Bool(true)) && body.len() == 1 { None } else { Some(group_body(&body)?) };
    let preview = groups::preview(&state, &name, g.as_ref(), state.now()).await?;
    Ok(no_store(Json(preview).into_response()))
}

/// A group body: `idle_timeout`, `max_lifetime`, `access_token_ttl`
/// (integer seconds > 0) and `max_sessions` (a count >= 1); `null` or left
/// out: the global value.
pub fn group_body(body: &Map<String, Value>) -> Result<GroupPolicy, ServiceError> {
    const FIELDS: &str = "idle_timeout, max_lifetime, access_token_ttl, max_sessions";
    let mut g = GroupPolicy::default();
    for (field, value) in body {
        if value.is_null() {
            continue;
        }
        let n = value.as_u64().ok_or_else(|| ServiceError::InvalidSetting {
            key: match field.as_str() {
                "idle_timeout" => "idle_timeout",
                "max_lifetime" => "max_lifetime",
                "access_token_ttl" => "access_token_ttl",
                _ => "max_sessions",
            },
            message: format!("{field} must be a whole number (>= 0), not {value} (field {field})"),
        });
        match field.as_str() {
            "idle_timeout" => g.idle_timeout = Some(Secs::new(n?)),
            "max_lifetime" => g.max_lifetime = Some(Secs::new(n?)),
            "access_token_ttl" => g.access_token_ttl = Some(Secs::new(n?)),
            "max_sessions" => {
                let n = n?;
                g.max_sessions = Some(u32::try_from(n).map_err(|_| {
                    ServiceError::invalid(format!("max_sessions must be at most {}, not {n}", u32::MAX))
                })?);
            }
            other => {
                return Err(ServiceError::invalid(format!("unknown field {other:?}; known fields: {FIELDS}")));
            }
        }
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::Secs;
    use crate::policy::{IdleTimeout, PolicyLayer, PolicyLayers};
    use crate::service::ServiceError;
    use crate::service::settings::{merge, view};

    type Result<T> = std::result::Result<T, ServiceError>;

    const FLOOR: Secs = Secs::minutes(5);

    /// `v` read as the admin API reads a body ([`policy_change`]), then
    /// merged by the use case.
    fn merged(layer: PolicyLayer, v: Value, floor: Secs) -> Result<PolicyLayer> {
        let body = v.as_object().cloned().unwrap_or_default();
        policy_change(&body).and_then(|change| merge(layer, &change, floor))
    }

    fn message(e: ServiceError) -> String {
        match e {
            ServiceError::Invalid(m) | ServiceError::InvalidSetting { message: m, .. } => m,
            other => format!("{other:?}"),
        }
    }

    /// The admin API's half of config's test of the same name: every row of
    /// the policy table (the operator-only ones aside) is taken by the
    /// admin API to the same layer as the file and the environment take it.
    #[test]
    fn every_policy_key_is_accepted_by_file_env_and_admin_api() {
        use crate::policy::POLICY_KEYS;
        let value = |d: &crate::policy::PolicyKeyDef| d.example();
        let mut expected = PolicyLayer::default();
        let mut json = serde_json::Map::new();
        for d in POLICY_KEYS {
            let v = value(d);
            d.set(&mut expected, Some(v)).expect("a value of the key's kind");
            json.insert(d.name.to_owned(), v.to_json());
        }
        let file = crate::config::Config::from_toml(
            &format!(
                "[session]\n{}",
                POLICY_KEYS.iter().map(|d| format!("{} = \"{}\"\n", d.name, value(d))).collect::<String>()
            ),
            &Default::default(),
        )
        .expect("the file takes every key");
        assert_eq!(file.policy_layers.file, expected, "config file");
        let admin = merged(PolicyLayer::default(), serde_json::Value::Object(json), Secs::new(1))
            .expect("the admin API takes every key");
        assert_eq!(admin, expected, "admin API");
    }

    #[test]
    fn merge_sets_clears_and_names_bad_fields() {
        let layer =
            merged(PolicyLayer::default(), serde_json::json!({"idle_timeout": 900, "max_lifetime": 3600}), FLOOR)
                .expect("valid");
        assert_eq!(layer.idle_timeout, Some(IdleTimeout::After(Secs::new(900))));
        let layer =
            merged(layer, serde_json::json!({"idle_timeout": "off", "max_lifetime": null}), FLOOR).expect("valid");
        assert_eq!(layer.idle_timeout, Some(IdleTimeout::Off));
        assert_eq!(layer.max_lifetime, None);
        let e = message(merged(PolicyLayer::default(), serde_json::json!({"idle": 1}), FLOOR).expect_err("unknown"));
        assert!(e.contains("unknown field \"idle\""), "{e}");
        let e = message(
            merged(PolicyLayer::default(), serde_json::json!({"max_lifetime": "12h"}), FLOOR).expect_err("type"),
        );
        assert!(e.contains("max_lifetime must be a whole number of seconds"), "{e}");
        let e = message(
            merged(PolicyLayer::default(), serde_json::json!({"max_lifetime": -5}), FLOOR).expect_err("negative"),
        );
        assert!(e.contains("max_lifetime"), "{e}");
    }

    #[test]
    fn the_admin_api_refuses_values_below_the_operators_floor() {
        let put = |v: Value| merged(PolicyLayer::default(), v, FLOOR);
        for key in
            ["idle_timeout", "max_lifetime", "remember_me_idle_timeout", "remember_me_max_lifetime", "access_token_ttl"]
        {
            let e = put(serde_json::json!({ key: 299 })).expect_err("under 5 minutes");
            assert!(matches!(e, ServiceError::InvalidSetting { key: k, .. } if k == key), "{e:?}");
            let m = message(e);
            assert_eq!(
                m,
                format!(
                    "{key} must be at least session.admin_floor (5m, 300 seconds) when set through the admin API, \
                     console or CLI, not 299 seconds; shorter values are for the config file or environment \
                     (field {key})"
                )
            );
            assert!(put(serde_json::json!({ key: 300 })).is_ok(), "{key} at the floor");
        }
        assert!(put(serde_json::json!({"idle_timeout": "off", "refresh_reuse_grace": 0})).is_ok(), "no floor");
        assert!(put(serde_json::json!({"idle_timeout": null})).is_ok(), "clearing is always allowed");
        // The operator's floor, whatever it is.
        let low = merged(PolicyLayer::default(), serde_json::json!({"idle_timeout": 2}), Secs::new(1));
        assert_eq!(low.expect("above a 1 s floor").idle_timeout, Some(IdleTimeout::After(Secs::new(2))));
        let high = merged(PolicyLayer::default(), serde_json::json!({"idle_timeout": 1800}), Secs::hours(1));
        assert!(
            message(high.expect_err("below a 1 h floor"))
                .starts_with("idle_timeout must be at least session.admin_floor (1h,")
        );
    }

    #[test]
    fn the_view_shows_values_and_sources() {
        let (p, sources) = PolicyLayers::default().resolve().expect("defaults");
        let v = serde_json::to_value(view(&p, &sources)).expect("json");
        assert_eq!(v["idle_timeout"], 1800);
        assert_eq!(v["access_token_ttl"], 1800);
        assert_eq!(v["sources"]["max_lifetime"], "default");
    }
}
