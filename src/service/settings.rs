//! The session settings (SPEC 3, 4, 9): the effective policy with each
//! value's source, changes through the admin API or the console (they win
//! over file and environment, are validated by the same rules, persisted, and
//! apply to live sessions at their next check), the preview of a change, and
//! the reset. The ceiling and the admin floor come from file or environment
//! only; no value set here may go below the floor.
//!
//! The JSON handlers (`http/settings.rs`) and the console call these; the
//! caller checks `system:administer`.

use serde_json::{Map, Value};

use super::actor::Actor;
use super::error::{Result, ServiceError};
use crate::audit::{AuditEvent, EventKind};
use crate::clock::UnixTime;
use crate::duration::Secs;
use crate::policy::{
    POLICY_KEYS, PolicyKey, PolicyKeyDef, PolicyLayer, PolicyLayers, PolicySources, PolicyValue, SessionPolicy, Source,
};
use crate::service::AppState;
use crate::store::Store;

/// A change to the admin layer: each key given is set to a value (`Some`)
/// or cleared (`None`: the file and environment apply again). Kept in the
/// order of the keys' names, the order the admin API reads a body in.
#[derive(Clone, Debug, Default)]
pub struct PolicyChange {
    keys: Vec<(&'static PolicyKeyDef, Option<PolicyValue>)>,
}

impl PolicyChange {
    /// Set `key` to `value`, or clear it with `None`; a later call for the
    /// same key wins.
    pub fn set(&mut self, key: PolicyKey, value: Option<PolicyValue>) {
        let def = key.def();
        self.keys.retain(|(d, _)| d.key != key);
        let at = self.keys.partition_point(|(d, _)| d.name < def.name);
        self.keys.insert(at, (def, value));
    }

    /// Clear every key an administrator may set: what the reset drops.
    pub fn clear_all() -> Self {
        let mut change = PolicyChange::default();
        for def in POLICY_KEYS.iter().filter(|d| d.admin_settable) {
            change.set(def.key, None);
        }
        change
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Each key changed with its new value, in the order of the keys' names.
    pub fn iter(&self) -> impl Iterator<Item = (&'static PolicyKeyDef, Option<PolicyValue>)> + '_ {
        self.keys.iter().copied()
    }
}

/// The settings in force: every key with its effective value and where it
/// comes from. Serialised as the admin API shows it: each key's value
/// (integer seconds, or "off" for an idle timeout), and `sources`.
#[derive(Clone, Debug)]
pub struct SettingsView {
    /// Every row of [`POLICY_KEYS`], in its order.
    pub values: Vec<(&'static PolicyKeyDef, PolicyValue, Source)>,
}

impl SettingsView {
    /// The effective value of `key`.
    pub fn value(&self, key: PolicyKey) -> Option<PolicyValue> {
        self.values.iter().find(|(d, _, _)| d.key == key).map(|(_, v, _)| *v)
    }

    fn to_json(&self) -> Value {
        let mut out = Map::new();
        for (def, value, _) in &self.values {
            out.insert(def.name.into(), value.to_json());
        }
        let src: Map<String, Value> = self
            .values
            .iter()
            .map(|(d, _, source)| (d.name.to_owned(), serde_json::to_value(source).unwrap_or(Value::Null)))
            .collect();
        out.insert("sources".into(), Value::Object(src));
        Value::Object(out)
    }
}

impl serde::Serialize for SettingsView {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

/// `GET /admin/settings/session`: the effective settings and where each
/// comes from.
pub fn current(state: &AppState) -> SettingsView {
    let policy = state.policy();
    view(&policy.0, &policy.1)
}

/// The view of `policy` with its `sources`.
pub fn view(policy: &SessionPolicy, sources: &PolicySources) -> SettingsView {
    SettingsView { values: POLICY_KEYS.iter().map(|d| (d, (d.effective)(policy), sources.of(d.key))).collect() }
}

/// Apply a change to the admin layer. A value set for a key the operator's
/// `floor` (`session.admin_floor`) binds must not be below it.
pub fn merge(mut layer: PolicyLayer, change: &PolicyChange, floor: Secs) -> Result<PolicyLayer> {
    for (def, new) in change.iter() {
        def.set(&mut layer, new).map_err(|_| ServiceError::InvalidSetting {
            key: def.name,
            message: format!("{} must be {}", def.name, def.expected()),
        })?;
        if let Some(v) = new {
            check_admin_floor(def, v, floor)?;
        }
    }
    Ok(layer)
}

/// Refuse an admin value below `floor` for a key the floor binds (see
/// `floored` in [`POLICY_KEYS`]).
pub(super) fn check_admin_floor(def: &PolicyKeyDef, value: PolicyValue, floor: Secs) -> Result<()> {
    let PolicyValue::Secs(v) = value else { return Ok(()) };
    if def.floored && v < floor {
        return Err(ServiceError::InvalidSetting {
            key: def.name,
            message: format!(
                "{name} must be at least session.admin_floor ({floor}, {} seconds) when set through the admin \
                 API, console or CLI, not {} seconds; shorter values are for the config file or environment \
                 (field {name})",
                floor.as_secs(),
                v.as_secs(),
                name = def.name,
            ),
        });
    }
    Ok(())
}

/// The operator's `session.admin_floor` in force (file or environment only).
fn floor(state: &AppState) -> Secs {
    state.policy().0.admin_floor
}

/// The policy in force with `admin` as the admin layer, validated by the
/// rules of SPEC 3 (the message names the key and the rule).
pub fn proposed(state: &AppState, admin: PolicyLayer) -> Result<(SessionPolicy, PolicySources)> {
    let layers = PolicyLayers { admin, ..state.config.policy_layers.clone() };
    layers
        .resolve()
        .map_err(|e| ServiceError::InvalidSetting { key: e.key(), message: format!("{e} (field {})", e.key()) })
}

/// What applying `changes` would do to the live sessions; refused exactly
/// as [`update`] would refuse it. Nothing changes.
pub async fn preview(state: &AppState, changes: &PolicyChange, now: UnixTime) -> Result<super::explain::Preview> {
    let old_admin =
        state.store.admin_policy().await.map_err(|e| ServiceError::store("previewing session settings", e))?;
    let (proposed, _) = proposed(state, merge(old_admin, changes, floor(state))?)?;
    super::explain::preview(state, &proposed, now).await
}

/// Apply `changes` and return the new view.
pub async fn update(state: &AppState, actor: &Actor, changes: &PolicyChange, now: UnixTime) -> Result<SettingsView> {
    let floor = floor(state);
    change(state, actor, |admin| merge(admin, changes, floor), EventKind::SettingsChanged, now).await
}

/// Drop every admin-set value; file and environment apply again.
pub async fn reset(state: &AppState, actor: &Actor, now: UnixTime) -> Result<SettingsView> {
    change(state, actor, |_| Ok(PolicyLayer::default()), EventKind::SettingsReset, now).await
}

/// Validate the new admin layer against the file and environment layers,
/// persist it and the policy history, audit, then put it in force.
async fn change(
    state: &AppState,
    actor: &Actor,
    update: impl FnOnce(PolicyLayer) -> Result<PolicyLayer>,
    kind: EventKind,
    now: UnixTime,
) -> Result<SettingsView> {
    let _serialised = state.settings_lock.lock().await;
    let store_err = |e| ServiceError::store("changing session settings", e);
    let old_admin = state.store.admin_policy().await.map_err(store_err)?;
    let admin = update(old_admin.clone())?;
    let resolved = proposed(state, admin.clone())?;
    let before = state.policy();
    // The history as stored, not as cached: another replica may have
    // changed it a moment ago.
    let mut history = match state.store.policy_history().await.map_err(store_err)? {
        Some(h) => h,
        None => (*state.history()).clone(),
    };
    history.change(now, resolved.0.clone());
    let new_view = view(&resolved.0, &resolved.1);
    let event = AuditEvent::new(now, kind, actor.name.clone(), "settings")
        .details(serde_json::json!({ "old": view(&before.0, &before.1), "new": new_view }));
    // One store transition: the admin layer, the history and the event.
    state.store.set_policy(Some(&admin), &history, Some(&event)).await.map_err(store_err)?;
    event.log();
    state.set_policy(resolved, history);
    Ok(new_view)
}
