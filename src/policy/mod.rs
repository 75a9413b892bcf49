//! Session policy: the two clocks of SPEC section 3.
//!
//! A policy enters tenure in layers — built-in defaults, the config file, the
//! environment, and (later) values set through the admin API — and every layer
//! goes through the one validator here, [`PolicyLayers::resolve`], so a rule
//! holds whichever way a value arrived. Per-client overrides may only tighten
//! the global policy ([`ClientSessionOverride::validate`]). The keys are
//! listed once, in [`POLICY_KEYS`], which every surface walks.
//!
//! The deadline maths are pure functions of the times they are given
//! ([`Limits`]); nothing here reads a clock.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::duration::Secs;

/// `session.idle_timeout`: a duration, or `off` (= the maximum lifetime).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleTimeout {
    Off,
    After(Secs),
}

impl IdleTimeout {
    /// The idle limit in force for a session whose absolute limit is `max`.
    pub fn within(self, max: Secs) -> Secs {
        match self {
            IdleTimeout::Off => max,
            IdleTimeout::After(d) => d,
        }
    }
}

impl fmt::Display for IdleTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdleTimeout::Off => f.write_str("off"),
            IdleTimeout::After(d) => d.fmt(f),
        }
    }
}

impl std::str::FromStr for IdleTimeout {
    type Err = crate::duration::ParseDurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case("off") { Ok(IdleTimeout::Off) } else { s.parse().map(IdleTimeout::After) }
    }
}

impl<'de> Deserialize<'de> for IdleTimeout {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(Secs),
            Off(String),
        }
        // `Secs` accepts integers and unit strings; "off" falls through to the string arm.
        match serde::Deserialize::deserialize(d) {
            Ok(Raw::Secs(s)) => Ok(IdleTimeout::After(s)),
            Ok(Raw::Off(s)) => s.parse().map_err(serde::de::Error::custom),
            Err(_) => Err(serde::de::Error::custom("expected a duration (1800, \"30m\", \"1d12h\") or \"off\"")),
        }
    }
}

impl Serialize for IdleTimeout {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            IdleTimeout::Off => s.serialize_str("off"),
            IdleTimeout::After(d) => d.serialize(s),
        }
    }
}

/// The keys of SPEC section 3, without the `session.` prefix. Each has one
/// row in [`POLICY_KEYS`], at the index of its discriminant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKey {
    IdleTimeout,
    MaxLifetime,
    RememberMeIdleTimeout,
    RememberMeMaxLifetime,
    AccessTokenTtl,
    RefreshReuseGrace,
    MaxLifetimeCeiling,
    AdminFloor,
}

impl PolicyKey {
    /// The key's row in [`POLICY_KEYS`].
    pub fn def(self) -> &'static PolicyKeyDef {
        // In bounds and the right row: checked at compile time below.
        &POLICY_KEYS[self as usize]
    }

    /// The field name (admin API) and key under `[session]` (config file).
    pub fn name(self) -> &'static str {
        self.def().name
    }

    /// The environment variable that sets it.
    pub fn env_var(self) -> &'static str {
        self.def().env_var
    }
}

/// A policy value as every surface spells it: a duration, or `off` (idle
/// timeouts only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyValue {
    Secs(Secs),
    Off,
}

impl From<IdleTimeout> for PolicyValue {
    fn from(t: IdleTimeout) -> Self {
        match t {
            IdleTimeout::Off => PolicyValue::Off,
            IdleTimeout::After(d) => PolicyValue::Secs(d),
        }
    }
}

impl fmt::Display for PolicyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyValue::Off => f.write_str("off"),
            PolicyValue::Secs(d) => d.fmt(f),
        }
    }
}

/// How a key is read from and written to a [`PolicyLayer`].
#[derive(Clone, Copy, Debug)]
pub enum PolicyField {
    /// A duration.
    Duration { get: fn(&PolicyLayer) -> Option<Secs>, set: fn(&mut PolicyLayer, Option<Secs>) },
    /// A duration or `off`.
    Idle { get: fn(&PolicyLayer) -> Option<IdleTimeout>, set: fn(&mut PolicyLayer, Option<IdleTimeout>) },
}

/// `off` given for a key that takes only durations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffNotAccepted;

/// One row of [`POLICY_KEYS`]: everything the config file, the environment,
/// the admin API, the command line and the console need to know of a key.
#[derive(Debug)]
pub struct PolicyKeyDef {
    pub key: PolicyKey,
    /// Key under `[session]`, admin API field and CLI setting name.
    pub name: &'static str,
    /// The `TENURE_SESSION_*` environment variable.
    pub env_var: &'static str,
    /// One line for people.
    pub description: &'static str,
    /// The console's words for it.
    pub label: &'static str,
    pub field: PolicyField,
    /// The value in force in a resolved policy.
    pub effective: fn(&SessionPolicy) -> PolicyValue,
    /// Whether the admin API (and console) may set it; if not, it comes from
    /// the config file or environment only.
    pub admin_settable: bool,
    /// Whether the operator's `session.admin_floor` bounds it from below
    /// when set through the admin API (and so the console and the CLI). A
    /// few seconds would sign everyone out at once, the admin included, with
    /// no way back through the API; file and environment still take any
    /// value above zero (tests, demos). The rules between keys are
    /// [`SessionPolicy::validate`].
    pub floored: bool,
}

impl PolicyKeyDef {
    /// Whether the key takes `off` besides durations.
    pub fn accepts_off(&self) -> bool {
        matches!(self.field, PolicyField::Idle { .. })
    }

    /// The value `layer` sets, if any.
    pub fn get(&self, layer: &PolicyLayer) -> Option<PolicyValue> {
        match self.field {
            PolicyField::Duration { get, .. } => get(layer).map(PolicyValue::Secs),
            PolicyField::Idle { get, .. } => get(layer).map(PolicyValue::from),
        }
    }

    /// Set (or, with `None`, drop) the value on `layer`.
    pub fn set(&self, layer: &mut PolicyLayer, value: Option<PolicyValue>) -> Result<(), OffNotAccepted> {
        match (self.field, value) {
            (PolicyField::Duration { set, .. }, None) => set(layer, None),
            (PolicyField::Duration { set, .. }, Some(PolicyValue::Secs(d))) => set(layer, Some(d)),
            (PolicyField::Duration { .. }, Some(PolicyValue::Off)) => return Err(OffNotAccepted),
            (PolicyField::Idle { set, .. }, None) => set(layer, None),
            (PolicyField::Idle { set, .. }, Some(PolicyValue::Secs(d))) => set(layer, Some(IdleTimeout::After(d))),
            (PolicyField::Idle { set, .. }, Some(PolicyValue::Off)) => set(layer, Some(IdleTimeout::Off)),
        }
        Ok(())
    }

    /// Copy the value of `from`, if it sets one, onto `to`; whether it did.
    fn copy(&self, from: &PolicyLayer, to: &mut PolicyLayer) -> bool {
        match self.field {
            PolicyField::Duration { get, set } => get(from).map(|v| set(to, Some(v))).is_some(),
            PolicyField::Idle { get, set } => get(from).map(|v| set(to, Some(v))).is_some(),
        }
    }

    /// A value as written in the environment (and on the command line):
    /// a duration like `1800`, `30m`, `1d12h`, or `off` where accepted.
    pub fn parse(&self, raw: &str) -> Result<PolicyValue, crate::duration::ParseDurationError> {
        match self.field {
            PolicyField::Duration { .. } => raw.parse::<Secs>().map(PolicyValue::Secs),
            PolicyField::Idle { .. } => raw.parse::<IdleTimeout>().map(PolicyValue::from),
        }
    }
}

/// The one table of session-policy keys (SPEC 3), in the order every listing
/// shows them. Config file, environment, admin API, command line and console
/// all walk it; adding a key means a row here, a field on [`PolicyLayer`]
/// and [`SessionPolicy`], and its rules in [`SessionPolicy::validate`].
pub const POLICY_KEYS: &[PolicyKeyDef] = &[
    PolicyKeyDef {
        key: PolicyKey::IdleTimeout,
        name: "idle_timeout",
        env_var: "TENURE_SESSION_IDLE_TIMEOUT",
        description: "max time between refreshes; `off` = same as max lifetime",
        label: "Idle timeout",
        field: PolicyField::Idle { get: |l| l.idle_timeout, set: |l, v| l.idle_timeout = v },
        effective: |p| p.idle_timeout.into(),
        admin_settable: true,
        floored: true,
    },
    PolicyKeyDef {
        key: PolicyKey::MaxLifetime,
        name: "max_lifetime",
        env_var: "TENURE_SESSION_MAX_LIFETIME",
        description: "absolute lifetime from sign-in",
        label: "Maximum session duration",
        field: PolicyField::Duration { get: |l| l.max_lifetime, set: |l, v| l.max_lifetime = v },
        effective: |p| PolicyValue::Secs(p.max_lifetime),
        admin_settable: true,
        floored: true,
    },
    PolicyKeyDef {
        key: PolicyKey::RememberMeIdleTimeout,
        name: "remember_me_idle_timeout",
        env_var: "TENURE_SESSION_REMEMBER_ME_IDLE_TIMEOUT",
        description: "idle limit when \"Remember me\" was ticked",
        label: "Remember me: idle timeout",
        field: PolicyField::Idle { get: |l| l.remember_me_idle_timeout, set: |l, v| l.remember_me_idle_timeout = v },
        effective: |p| p.remember_me_idle_timeout.into(),
        admin_settable: true,
        floored: true,
    },
    PolicyKeyDef {
        key: PolicyKey::RememberMeMaxLifetime,
        name: "remember_me_max_lifetime",
        env_var: "TENURE_SESSION_REMEMBER_ME_MAX_LIFETIME",
        description: "absolute limit when \"Remember me\" was ticked",
        label: "Remember me: maximum session duration",
        field: PolicyField::Duration {
            get: |l| l.remember_me_max_lifetime,
            set: |l, v| l.remember_me_max_lifetime = v,
        },
        effective: |p| PolicyValue::Secs(p.remember_me_max_lifetime),
        admin_settable: true,
        floored: true,
    },
    PolicyKeyDef {
        key: PolicyKey::AccessTokenTtl,
        name: "access_token_ttl",
        env_var: "TENURE_SESSION_ACCESS_TOKEN_TTL",
        description: "access token lifetime; never above the idle timeout (unset = the idle timeout)",
        label: "Access token lifetime",
        field: PolicyField::Duration { get: |l| l.access_token_ttl, set: |l, v| l.access_token_ttl = v },
        effective: |p| PolicyValue::Secs(p.access_token_ttl()),
        admin_settable: true,
        floored: true,
    },
    PolicyKeyDef {
        key: PolicyKey::RefreshReuseGrace,
        name: "refresh_reuse_grace",
        env_var: "TENURE_SESSION_REFRESH_REUSE_GRACE",
        description: "retry window for the previous refresh token",
        label: "Reuse grace",
        field: PolicyField::Duration { get: |l| l.refresh_reuse_grace, set: |l, v| l.refresh_reuse_grace = v },
        effective: |p| PolicyValue::Secs(p.refresh_reuse_grace),
        admin_settable: true,
        floored: false,
    },
    PolicyKeyDef {
        key: PolicyKey::MaxLifetimeCeiling,
        name: "max_lifetime_ceiling",
        env_var: "TENURE_SESSION_MAX_LIFETIME_CEILING",
        description: "operator's cap: nothing (admin API included) may exceed it; file or environment only",
        label: "Ceiling",
        field: PolicyField::Duration { get: |l| l.max_lifetime_ceiling, set: |l, v| l.max_lifetime_ceiling = v },
        effective: |p| PolicyValue::Secs(p.max_lifetime_ceiling),
        admin_settable: false,
        floored: false,
    },
    PolicyKeyDef {
        key: PolicyKey::AdminFloor,
        name: "admin_floor",
        env_var: "TENURE_SESSION_ADMIN_FLOOR",
        description: "operator's floor: the admin API, console and CLI may not set an idle timeout, maximum lifetime \
                      or access-token lifetime below it; file or environment only",
        label: "Floor",
        field: PolicyField::Duration { get: |l| l.admin_floor, set: |l, v| l.admin_floor = v },
        effective: |p| PolicyValue::Secs(p.admin_floor),
        admin_settable: false,
        floored: false,
    },
];

// Row `i` of the table is the key whose discriminant is `i`, so
// `PolicyKey::def` indexes it directly.
const _: () = {
    let mut i = 0;
    while i < POLICY_KEYS.len() {
        assert!(POLICY_KEYS[i].key as usize == i, "POLICY_KEYS is not in PolicyKey order");
        i += 1;
    }
};

/// Where an effective value came from (SPEC 3, precedence).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Default,
    File,
    Env,
    Admin,
}

/// One layer of session settings: every key optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyLayer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<IdleTimeout>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lifetime: Option<Secs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remember_me_idle_timeout: Option<IdleTimeout>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remember_me_max_lifetime: Option<Secs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_ttl: Option<Secs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_reuse_grace: Option<Secs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lifetime_ceiling: Option<Secs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_floor: Option<Secs>,
}

impl PolicyLayer {
    pub fn is_empty(&self) -> bool {
        *self == PolicyLayer::default()
    }
}

/// The layers in precedence order: defaults < file < env < admin.
#[derive(Clone, Debug, Default)]
pub struct PolicyLayers {
    pub file: PolicyLayer,
    pub env: PolicyLayer,
    pub admin: PolicyLayer,
}

/// The validated, effective global policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionPolicy {
    pub idle_timeout: IdleTimeout,
    pub max_lifetime: Secs,
    pub remember_me_idle_timeout: IdleTimeout,
    pub remember_me_max_lifetime: Secs,
    /// `None` means "= idle timeout" (SPEC 3 default).
    pub access_token_ttl: Option<Secs>,
    pub refresh_reuse_grace: Secs,
    pub max_lifetime_ceiling: Secs,
    /// The shortest idle timeout, maximum lifetime or access-token lifetime
    /// the admin API accepts. Histories stored before the key existed read
    /// as the default.
    #[serde(default = "default_admin_floor")]
    pub admin_floor: Secs,
}

/// SPEC 3: `session.admin_floor` defaults to 5 minutes.
fn default_admin_floor() -> Secs {
    Secs::minutes(5)
}

impl Default for SessionPolicy {
    /// The built-in defaults of SPEC section 3.
    fn default() -> Self {
        SessionPolicy {
            idle_timeout: IdleTimeout::After(Secs::minutes(30)),
            max_lifetime: Secs::hours(12),
            remember_me_idle_timeout: IdleTimeout::After(Secs::days(7)),
            remember_me_max_lifetime: Secs::days(20),
            access_token_ttl: None,
            refresh_reuse_grace: Secs::ZERO,
            max_lifetime_ceiling: Secs::days(30),
            admin_floor: default_admin_floor(),
        }
    }
}

/// Each effective value's origin, for `GET /admin/settings/session`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySources(pub Vec<(PolicyKey, Source)>);

impl PolicySources {
    pub fn of(&self, key: PolicyKey) -> Source {
        self.0.iter().find(|(k, _)| *k == key).map_or(Source::Default, |(_, s)| *s)
    }
}

/// A refused policy: names the key and the rule it breaks, like
/// `session.idle_timeout (2h) must not exceed session.max_lifetime (1h)`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PolicyError {
    key: &'static str,
    message: Box<str>,
}

impl PolicyError {
    /// The offending key, as the admin API names the field.
    pub fn key(&self) -> &'static str {
        self.key
    }

    fn not_positive(scope: &str, key: &'static str) -> Self {
        PolicyError { key, message: format!("{scope}{key} must be greater than 0").into() }
    }

    fn exceeds(
        scope: &str,
        key: &'static str,
        value: impl fmt::Display,
        limit_scope: &str,
        limit_key: &'static str,
        limit: impl fmt::Display,
    ) -> Self {
        PolicyError {
            key,
            message: format!("{scope}{key} ({value}) must not exceed {limit_scope}{limit_key} ({limit})").into(),
        }
    }

    fn not_admin_settable(key: &'static str) -> Self {
        PolicyError {
            key,
            message: format!(
                "{GLOBAL_SCOPE}{key} may not be set through the admin API: it comes from the config file or environment only"
            )
            .into(),
        }
    }
}

const GLOBAL_SCOPE: &str = "session.";

fn exceeds(key: PolicyKey, value: impl fmt::Display, limit_key: PolicyKey, limit: impl fmt::Display) -> PolicyError {
    PolicyError::exceeds(GLOBAL_SCOPE, key.name(), value, GLOBAL_SCOPE, limit_key.name(), limit)
}

fn positive(key: PolicyKey, d: Secs) -> Result<(), PolicyError> {
    if d.is_zero() {
        return Err(PolicyError::not_positive(GLOBAL_SCOPE, key.name()));
    }
    Ok(())
}

impl PolicyLayers {
    /// Merge the layers and validate the result (SPEC 3, "Validation").
    pub fn resolve(&self) -> Result<(SessionPolicy, PolicySources), PolicyError> {
        if let Some(def) = POLICY_KEYS.iter().find(|d| !d.admin_settable && d.get(&self.admin).is_some()) {
            return Err(PolicyError::not_admin_settable(def.name));
        }
        let mut merged = PolicyLayer::default();
        let mut sources: Vec<(PolicyKey, Source)> = POLICY_KEYS.iter().map(|d| (d.key, Source::Default)).collect();
        for (layer, source) in [(&self.file, Source::File), (&self.env, Source::Env), (&self.admin, Source::Admin)] {
            for (def, entry) in POLICY_KEYS.iter().zip(sources.iter_mut()) {
                if def.copy(layer, &mut merged) {
                    entry.1 = source;
                }
            }
        }
        let p = SessionPolicy::over_defaults(&merged);
        p.validate()?;
        Ok((p, PolicySources(sources)))
    }
}

impl SessionPolicy {
    /// The built-in defaults with every value `layer` sets put over them.
    fn over_defaults(layer: &PolicyLayer) -> SessionPolicy {
        let d = SessionPolicy::default();
        SessionPolicy {
            idle_timeout: layer.idle_timeout.unwrap_or(d.idle_timeout),
            max_lifetime: layer.max_lifetime.unwrap_or(d.max_lifetime),
            remember_me_idle_timeout: layer.remember_me_idle_timeout.unwrap_or(d.remember_me_idle_timeout),
            remember_me_max_lifetime: layer.remember_me_max_lifetime.unwrap_or(d.remember_me_max_lifetime),
            access_token_ttl: layer.access_token_ttl.or(d.access_token_ttl),
            refresh_reuse_grace: layer.refresh_reuse_grace.unwrap_or(d.refresh_reuse_grace),
            max_lifetime_ceiling: layer.max_lifetime_ceiling.unwrap_or(d.max_lifetime_ceiling),
            admin_floor: layer.admin_floor.unwrap_or(d.admin_floor),
        }
    }

    /// Every rule of SPEC 3: durations > 0 (grace >= 0); idle <= max;
    /// access_token_ttl <= idle; remember-me idle <= remember-me max; every
    /// lifetime <= ceiling; the admin floor <= ceiling. (The floor itself
    /// binds only values set through the admin API: see
    /// `service::settings::merge`.)
    pub fn validate(&self) -> Result<(), PolicyError> {
        use PolicyKey as K;
        positive(K::MaxLifetimeCeiling, self.max_lifetime_ceiling)?;
        positive(K::AdminFloor, self.admin_floor)?;
        if self.admin_floor > self.max_lifetime_ceiling {
            return Err(exceeds(K::AdminFloor, self.admin_floor, K::MaxLifetimeCeiling, self.max_lifetime_ceiling));
        }
        positive(K::MaxLifetime, self.max_lifetime)?;
        positive(K::RememberMeMaxLifetime, self.remember_me_max_lifetime)?;
        if let IdleTimeout::After(d) = self.idle_timeout {
            positive(K::IdleTimeout, d)?;
        }
        if let IdleTimeout::After(d) = self.remember_me_idle_timeout {
            positive(K::RememberMeIdleTimeout, d)?;
        }
        if let Some(ttl) = self.access_token_ttl {
            positive(K::AccessTokenTtl, ttl)?;
        }
        if let IdleTimeout::After(idle) = self.idle_timeout
            && idle > self.max_lifetime
        {
            return Err(exceeds(K::IdleTimeout, idle, K::MaxLifetime, self.max_lifetime));
        }
        if let IdleTimeout::After(idle) = self.remember_me_idle_timeout
            && idle > self.remember_me_max_lifetime
        {
            return Err(exceeds(
                K::RememberMeIdleTimeout,
                idle,
                K::RememberMeMaxLifetime,
                self.remember_me_max_lifetime,
            ));
        }
        if let Some(ttl) = self.access_token_ttl {
            let idle = self.idle_timeout.within(self.max_lifetime);
            let limit_key = match self.idle_timeout {
                IdleTimeout::Off => K::MaxLifetime,
                IdleTimeout::After(_) => K::IdleTimeout,
            };
            if ttl > idle {
                return Err(exceeds(K::AccessTokenTtl, ttl, limit_key, idle));
            }
        }
        let ceiling = self.max_lifetime_ceiling;
        for (key, value) in [
            (K::MaxLifetime, self.max_lifetime),
            (K::RememberMeMaxLifetime, self.remember_me_max_lifetime),
            (K::RefreshReuseGrace, self.refresh_reuse_grace),
        ] {
            if value > ceiling {
                return Err(exceeds(key, value, K::MaxLifetimeCeiling, ceiling));
            }
        }
        Ok(())
    }

    /// The access-token lifetime: the configured one, or the idle timeout.
    pub fn access_token_ttl(&self) -> Secs {
        self.access_token_ttl.unwrap_or_else(|| self.idle_timeout.within(self.max_lifetime))
    }

    /// The limits in force for one session, given "Remember me" and the
    /// client's override. Overrides only ever tighten.
    pub fn limits(&self, remember_me: bool, client: Option<&ClientSessionOverride>) -> Limits {
        let (mut idle, mut max) = if remember_me {
            (self.remember_me_idle_timeout.within(self.remember_me_max_lifetime), self.remember_me_max_lifetime)
        } else {
            (self.idle_timeout.within(self.max_lifetime), self.max_lifetime)
        };
        let mut ttl = self.access_token_ttl();
        if let Some(o) = client {
            max = o.max_lifetime.map_or(max, |m| m.min(max));
            idle = o.idle_timeout.map_or(idle, |i| i.min(idle));
            ttl = o.access_token_ttl.map_or(ttl, |t| t.min(ttl));
        }
        let max = max.min(self.max_lifetime_ceiling);
        let idle = idle.min(max);
        Limits { idle_timeout: idle, max_lifetime: max, access_token_ttl: ttl.min(idle) }
    }
}

/// A client's `session` table (SPEC 3, per-client overrides).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSessionOverride {
    #[serde(default)]
    pub idle_timeout: Option<Secs>,
    #[serde(default)]
    pub max_lifetime: Option<Secs>,
    #[serde(default)]
    pub access_token_ttl: Option<Secs>,
}

impl ClientSessionOverride {
    /// An override may only tighten `global`; a loosening one is refused like
    /// any bad value, naming the client and the key.
    pub fn validate(&self, client_id: &str, global: &SessionPolicy) -> Result<(), PolicyError> {
        let scope = format!("clients[{client_id}].session.");
        let refuse = |key: PolicyKey, value: Secs, limit_key: PolicyKey, limit: Secs, own: bool| {
            let limit_scope = if own { scope.as_str() } else { GLOBAL_SCOPE };
            PolicyError::exceeds(&scope, key.name(), value, limit_scope, limit_key.name(), limit)
        };
        for (key, value) in [
            (PolicyKey::IdleTimeout, self.idle_timeout),
            (PolicyKey::MaxLifetime, self.max_lifetime),
            (PolicyKey::AccessTokenTtl, self.access_token_ttl),
        ] {
            if value.is_some_and(Secs::is_zero) {
                return Err(PolicyError::not_positive(&scope, key.name()));
            }
        }
        let global_idle = global.idle_timeout.within(global.max_lifetime);
        if let Some(max) = self.max_lifetime
            && max > global.max_lifetime
        {
            return Err(refuse(PolicyKey::MaxLifetime, max, PolicyKey::MaxLifetime, global.max_lifetime, false));
        }
        if let Some(idle) = self.idle_timeout {
            if idle > global_idle {
                let limit_key = match global.idle_timeout {
                    IdleTimeout::Off => PolicyKey::MaxLifetime,
                    IdleTimeout::After(_) => PolicyKey::IdleTimeout,
                };
                return Err(refuse(PolicyKey::IdleTimeout, idle, limit_key, global_idle, false));
            }
            if let Some(max) = self.max_lifetime
                && idle > max
            {
                return Err(refuse(PolicyKey::IdleTimeout, idle, PolicyKey::MaxLifetime, max, true));
            }
        }
        if let Some(ttl) = self.access_token_ttl {
            if ttl > global.access_token_ttl() {
                return Err(refuse(
                    PolicyKey::AccessTokenTtl,
                    ttl,
                    PolicyKey::AccessTokenTtl,
                    global.access_token_ttl(),
                    false,
                ));
            }
            if let Some(idle) = self.idle_timeout
                && ttl > idle
            {
                return Err(refuse(PolicyKey::AccessTokenTtl, ttl, PolicyKey::IdleTimeout, idle, true));
            }
        }
        Ok(())
    }
}

/// The limits of one session, after "Remember me" and client overrides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub idle_timeout: Secs,
    pub max_lifetime: Secs,
    pub access_token_ttl: Secs,
}

impl Limits {
    /// Last activity + idle timeout.
    pub fn idle_deadline(&self, last_active: UnixTime) -> UnixTime {
        last_active.plus(self.idle_timeout)
    }

    /// Sign-in + maximum lifetime; never moves.
    pub fn absolute_deadline(&self, signed_in: UnixTime) -> UnixTime {
        signed_in.plus(self.max_lifetime)
    }

    /// The earlier of the two deadlines: when the session dies.
    pub fn deadline(&self, signed_in: UnixTime, last_active: UnixTime) -> UnixTime {
        self.idle_deadline(last_active).min(self.absolute_deadline(signed_in))
    }

    /// Whether a session signed in at `signed_in` and last active at
    /// `last_active` is still alive at `now`. Dead exactly at the deadline.
    pub fn is_alive(&self, signed_in: UnixTime, last_active: UnixTime, now: UnixTime) -> bool {
        now < self.deadline(signed_in, last_active)
    }

    /// SPEC 3: access token `exp` = min(now + ttl, idle deadline, absolute
    /// deadline), where activity at `now` has just reset the idle clock.
    pub fn access_token_exp(&self, signed_in: UnixTime, now: UnixTime) -> UnixTime {
        now.plus(self.access_token_ttl).min(self.deadline(signed_in, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(toml_text: &str) -> PolicyLayer {
        toml::from_str(toml_text).expect("valid layer")
    }

    fn resolve_file(toml_text: &str) -> Result<SessionPolicy, PolicyError> {
        PolicyLayers { file: layer(toml_text), ..Default::default() }.resolve().map(|(p, _)| p)
    }

    fn message(toml_text: &str) -> String {
        resolve_file(toml_text).expect_err("must be refused").to_string()
    }

    /// The names serde gives the fields of a struct.
    fn serde_fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
        struct Fields(&'static [&'static str]);
        impl<'de> serde::Deserializer<'de> for &mut Fields {
            type Error = serde::de::value::Error;
            fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
                Err(serde::de::Error::custom("only structs"))
            }
            fn deserialize_struct<V: serde::de::Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Self::Error> {
                self.0 = fields;
                Err(serde::de::Error::custom("fields recorded"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
                unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
            }
        }
        let mut f = Fields(&[]);
        let _ = T::deserialize(&mut f);
        f.0
    }

    #[test]
    fn the_table_has_one_row_per_key_in_layer_and_policy_order() {
        let names: Vec<&str> = POLICY_KEYS.iter().map(|d| d.name).collect();
        assert_eq!(serde_fields::<PolicyLayer>(), names.as_slice(), "PolicyLayer fields");
        assert_eq!(serde_fields::<SessionPolicy>(), names.as_slice(), "SessionPolicy fields");
        for (i, d) in POLICY_KEYS.iter().enumerate() {
            assert_eq!(d.key as usize, i);
            assert_eq!(d.key.name(), d.name);
            assert_eq!(d.env_var, format!("TENURE_SESSION_{}", d.name.to_ascii_uppercase()), "SPEC 3 naming");
            assert!(!d.description.is_empty() && !d.label.is_empty(), "{}", d.name);
        }
    }

    #[test]
    fn each_row_reads_and_writes_its_own_field() {
        for d in POLICY_KEYS {
            let mut layer = PolicyLayer::default();
            d.set(&mut layer, Some(PolicyValue::Secs(Secs::new(7)))).expect("a duration fits every key");
            assert_eq!(d.get(&layer), Some(PolicyValue::Secs(Secs::new(7))), "{}", d.name);
            let json = serde_json::to_value(&layer).expect("serialisable");
            assert_eq!(json, serde_json::json!({ d.name: 7 }), "{} sets only its own field", d.name);
            assert_eq!(d.set(&mut layer, Some(PolicyValue::Off)).is_ok(), d.accepts_off(), "{}", d.name);
            assert_eq!(d.parse("off").is_ok(), d.accepts_off(), "{}", d.name);
            d.set(&mut layer, None).expect("clearing");
            assert!(layer.is_empty(), "{}", d.name);
        }
        // The effective value comes from the key's own field.
        let distinct: serde_json::Map<String, serde_json::Value> =
            POLICY_KEYS.iter().zip(1u64..).map(|(d, n)| (d.name.to_owned(), n.into())).collect();
        let p: SessionPolicy = serde_json::from_value(distinct.into()).expect("every field");
        for (d, n) in POLICY_KEYS.iter().zip(1u64..) {
            assert_eq!((d.effective)(&p), PolicyValue::Secs(Secs::new(n)), "{}", d.name);
        }
    }

    #[test]
    fn defaults_are_the_spec_values() {
        let (p, sources) = PolicyLayers::default().resolve().expect("defaults are valid");
        assert_eq!(p.idle_timeout, IdleTimeout::After(Secs::minutes(30)));
        assert_eq!(p.max_lifetime, Secs::hours(12));
        assert_eq!(p.remember_me_idle_timeout, IdleTimeout::After(Secs::days(7)));
        assert_eq!(p.remember_me_max_lifetime, Secs::days(20));
        assert_eq!(p.access_token_ttl(), Secs::minutes(30), "defaults to the idle timeout");
        assert_eq!(p.refresh_reuse_grace, Secs::ZERO);
        assert_eq!(p.max_lifetime_ceiling, Secs::days(30));
        assert_eq!(p.admin_floor, Secs::minutes(5));
        assert!(sources.0.iter().all(|(_, s)| *s == Source::Default));
    }

    #[test]
    fn every_duration_must_be_positive() {
        for key in [
            "idle_timeout",
            "max_lifetime",
            "remember_me_idle_timeout",
            "remember_me_max_lifetime",
            "access_token_ttl",
            "max_lifetime_ceiling",
            "admin_floor",
        ] {
            assert_eq!(message(&format!("{key} = 0")), format!("session.{key} must be greater than 0"));
        }
        // The grace window may be zero: that is its default.
        assert!(resolve_file("refresh_reuse_grace = 0").is_ok());
    }

    #[test]
    fn idle_must_not_exceed_max() {
        assert_eq!(
            message("idle_timeout = \"2h\"\nmax_lifetime = \"1h\""),
            "session.idle_timeout (2h) must not exceed session.max_lifetime (1h)"
        );
        assert!(resolve_file("idle_timeout = \"1h\"\nmax_lifetime = \"1h\"").is_ok(), "equal is allowed");
    }

    #[test]
    fn access_token_ttl_must_not_exceed_idle() {
        assert_eq!(
            message("access_token_ttl = \"31m\""),
            "session.access_token_ttl (31m) must not exceed session.idle_timeout (30m)"
        );
        assert_eq!(resolve_file("access_token_ttl = \"5m\"").map(|p| p.access_token_ttl()), Ok(Secs::minutes(5)));
    }

    #[test]
    fn remember_me_idle_must_not_exceed_remember_me_max() {
        assert_eq!(
            message("remember_me_idle_timeout = \"21d\""),
            "session.remember_me_idle_timeout (21d) must not exceed session.remember_me_max_lifetime (20d)"
        );
    }

    #[test]
    fn every_lifetime_must_respect_the_ceiling() {
        assert_eq!(
            message("max_lifetime = \"31d\""),
            "session.max_lifetime (31d) must not exceed session.max_lifetime_ceiling (30d)"
        );
        assert_eq!(
            message("remember_me_max_lifetime = \"40d\""),
            "session.remember_me_max_lifetime (40d) must not exceed session.max_lifetime_ceiling (30d)"
        );
        assert_eq!(
            message("max_lifetime_ceiling = \"10d\""),
            "session.remember_me_max_lifetime (20d) must not exceed session.max_lifetime_ceiling (10d)"
        );
    }

    #[test]
    fn idle_off_means_the_max_lifetime() {
        let p = resolve_file("idle_timeout = \"off\"\nmax_lifetime = \"8h\"").expect("valid");
        assert_eq!(p.idle_timeout, IdleTimeout::Off);
        assert_eq!(p.access_token_ttl(), Secs::hours(8));
        let limits = p.limits(false, None);
        assert_eq!(limits.idle_timeout, Secs::hours(8));
        assert_eq!(
            message("idle_timeout = \"off\"\nmax_lifetime = \"8h\"\naccess_token_ttl = \"9h\""),
            "session.access_token_ttl (9h) must not exceed session.max_lifetime (8h)"
        );
    }

    #[test]
    fn later_layers_win_and_sources_say_which() {
        let layers = PolicyLayers {
            file: layer("idle_timeout = \"20m\"\nmax_lifetime = \"10h\""),
            env: layer("idle_timeout = \"15m\""),
            admin: layer("max_lifetime = \"9h\""),
        };
        let (p, sources) = layers.resolve().expect("valid");
        assert_eq!(p.idle_timeout, IdleTimeout::After(Secs::minutes(15)));
        assert_eq!(p.max_lifetime, Secs::hours(9));
        assert_eq!(sources.of(PolicyKey::IdleTimeout), Source::Env);
        assert_eq!(sources.of(PolicyKey::MaxLifetime), Source::Admin);
        assert_eq!(sources.of(PolicyKey::RememberMeMaxLifetime), Source::Default);
    }

    #[test]
    fn the_admin_floor_is_positive_and_within_the_ceiling() {
        assert_eq!(
            message(
                "max_lifetime_ceiling = \"1d\"\nremember_me_max_lifetime = \"1d\"\nremember_me_idle_timeout = \"1h\"\nadmin_floor = \"2d\""
            ),
            "session.admin_floor (2d) must not exceed session.max_lifetime_ceiling (1d)"
        );
        assert_eq!(resolve_file("admin_floor = \"1s\"").map(|p| p.admin_floor), Ok(Secs::new(1)));
        let layers = PolicyLayers { admin: layer("admin_floor = 1"), ..Default::default() };
        let err = layers.resolve().expect_err("an operator key");
        assert_eq!(err.key(), "admin_floor");
        assert!(err.to_string().contains("config file or environment only"), "{err}");
        // A history stored before the key existed reads with the default.
        let mut old = serde_json::to_value(SessionPolicy::default()).expect("serialisable");
        old.as_object_mut().expect("an object").remove("admin_floor");
        let read: SessionPolicy = serde_json::from_value(old).expect("readable");
        assert_eq!(read, SessionPolicy::default());
    }

    #[test]
    fn the_ceiling_cannot_be_set_by_the_admin_api() {
        let layers = PolicyLayers { admin: layer("max_lifetime_ceiling = \"60d\""), ..Default::default() };
        let err = layers.resolve().expect_err("refused");
        assert_eq!(err.key(), "max_lifetime_ceiling");
        assert!(err.to_string().contains("config file or environment only"), "{err}");
    }

    #[test]
    fn an_admin_value_is_validated_against_the_other_layers() {
        let layers = PolicyLayers {
            file: layer("max_lifetime = \"2h\""),
            admin: layer("idle_timeout = \"3h\""),
            ..Default::default()
        };
        assert_eq!(
            layers.resolve().expect_err("refused").to_string(),
            "session.idle_timeout (3h) must not exceed session.max_lifetime (2h)"
        );
    }

    fn override_of(toml_text: &str) -> ClientSessionOverride {
        toml::from_str(toml_text).expect("valid override")
    }

    #[test]
    fn client_overrides_may_only_tighten() {
        let global = SessionPolicy::default();
        assert!(override_of("max_lifetime = \"1h\"").validate("kubectl", &global).is_ok());
        assert_eq!(
            override_of("max_lifetime = \"13h\"").validate("spa", &global).expect_err("loosens").to_string(),
            "clients[spa].session.max_lifetime (13h) must not exceed session.max_lifetime (12h)"
        );
        assert_eq!(
            override_of("idle_timeout = \"1h\"").validate("spa", &global).expect_err("loosens").to_string(),
            "clients[spa].session.idle_timeout (1h) must not exceed session.idle_timeout (30m)"
        );
        assert_eq!(
            override_of("access_token_ttl = \"31m\"").validate("spa", &global).expect_err("loosens").to_string(),
            "clients[spa].session.access_token_ttl (31m) must not exceed session.access_token_ttl (30m)"
        );
        assert_eq!(
            override_of("idle_timeout = \"20m\"\nmax_lifetime = \"10m\"")
                .validate("spa", &global)
                .expect_err("inconsistent")
                .to_string(),
            "clients[spa].session.idle_timeout (20m) must not exceed clients[spa].session.max_lifetime (10m)"
        );
        assert_eq!(
            override_of("idle_timeout = \"5m\"\naccess_token_ttl = \"10m\"")
                .validate("spa", &global)
                .expect_err("inconsistent")
                .to_string(),
            "clients[spa].session.access_token_ttl (10m) must not exceed clients[spa].session.idle_timeout (5m)"
        );
        assert_eq!(
            override_of("max_lifetime = 0").validate("spa", &global).expect_err("zero").to_string(),
            "clients[spa].session.max_lifetime must be greater than 0"
        );
    }

    const T0: UnixTime = UnixTime(1_700_000_000);

    #[test]
    fn idle_expiry_is_exact_to_the_second() {
        let limits = SessionPolicy::default().limits(false, None);
        let last_active = T0.plus(Secs::minutes(10));
        assert!(limits.is_alive(T0, last_active, last_active.plus(Secs::new(1799))));
        assert!(!limits.is_alive(T0, last_active, last_active.plus(Secs::new(1800))));
    }

    #[test]
    fn absolute_expiry_holds_however_active() {
        let limits = SessionPolicy::default().limits(false, None);
        // Active every 10 minutes for 12 hours: alive until the last second.
        let mut now = T0;
        while now < T0.plus(Secs::hours(12)) {
            assert!(limits.is_alive(T0, now, now), "alive at {now}");
            now = now.plus(Secs::minutes(10));
        }
        assert!(!limits.is_alive(T0, T0.plus(Secs::hours(12)), T0.plus(Secs::hours(12))));
        // Right before the end, the access token is cut to the absolute deadline.
        let end = T0.plus(Secs::hours(12));
        let a_minute_before = UnixTime(end.0 - 60);
        assert_eq!(limits.access_token_exp(T0, a_minute_before), end);
    }

    #[test]
    fn remember_me_uses_the_longer_pair() {
        let p = SessionPolicy::default();
        let limits = p.limits(true, None);
        assert_eq!(limits.idle_timeout, Secs::days(7));
        assert_eq!(limits.max_lifetime, Secs::days(20));
        assert_eq!(
            limits.access_token_ttl,
            Secs::minutes(30),
            "remember-me lengthens the session, not the access token"
        );
        let idle_end = T0.plus(Secs::days(13));
        assert!(limits.is_alive(T0, T0.plus(Secs::days(6)), UnixTime(idle_end.as_secs() - 1)));
        assert!(!limits.is_alive(T0, T0.plus(Secs::days(6)), idle_end));
        assert!(!limits.is_alive(T0, T0.plus(Secs::days(19)), T0.plus(Secs::days(20))));
    }

    #[test]
    fn a_client_override_caps_even_remember_me_sessions() {
        let p = SessionPolicy::default();
        let kubectl = override_of("max_lifetime = \"1h\"\naccess_token_ttl = \"5m\"");
        let limits = p.limits(true, Some(&kubectl));
        assert_eq!(limits.max_lifetime, Secs::hours(1));
        assert_eq!(limits.idle_timeout, Secs::hours(1), "idle never exceeds max");
        assert_eq!(limits.access_token_ttl, Secs::minutes(5));
        assert_eq!(limits.absolute_deadline(T0), T0.plus(Secs::hours(1)));
    }

    #[test]
    fn a_shortened_policy_ends_older_sessions_and_a_longer_one_never_revives() {
        let signed_in = T0;
        let now = T0.plus(Secs::hours(3));
        let long = SessionPolicy::default().limits(false, None);
        assert!(long.is_alive(signed_in, now, now));
        let short = PolicyLayers { admin: layer("max_lifetime = \"2h\""), ..Default::default() }
            .resolve()
            .expect("valid")
            .0
            .limits(false, None);
        assert!(!short.is_alive(signed_in, now, now), "older than the new max lifetime: dead");
        // Liveness is judged per check; revival is prevented by the session
        // store marking a session dead once observed (see session/).
        assert!(short.is_alive(now, now, now), "a session signed in now lives under the new policy");
    }

    #[test]
    fn access_token_exp_is_the_min_of_ttl_and_both_deadlines() {
        let p = resolve_file("access_token_ttl = \"10m\"").expect("valid");
        let limits = p.limits(false, None);
        let now = T0.plus(Secs::hours(1));
        assert_eq!(limits.access_token_exp(T0, now), now.plus(Secs::minutes(10)));
        let near_end = T0.plus(Secs::hours(12));
        let now = UnixTime(near_end.0 - 120);
        assert_eq!(limits.access_token_exp(T0, now), near_end);
    }
}

/// The global policies that have been in force, oldest first: `(from, policy)`.
///
/// SPEC 3: "a session older than a newly shortened max lifetime is dead.
/// Loosening a limit never revives a dead session." Judging a session by the
/// current policy alone would revive one that died under a stricter policy
/// no-one checked it against; judging it against every policy in force since
/// its last proven activity is exact. Histories are short (a change is an
/// operator action) and pruned past the ceiling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyHistory(Vec<(UnixTime, SessionPolicy)>);

impl PolicyHistory {
    pub fn new(from: UnixTime, policy: SessionPolicy) -> Self {
        PolicyHistory(vec![(from, policy)])
    }

    pub fn current(&self) -> &SessionPolicy {
        // Never empty: built with one entry and only ever appended to.
        &self.0[self.0.len() - 1].1
    }

    pub fn entries(&self) -> &[(UnixTime, SessionPolicy)] {
        &self.0
    }

    pub fn from_entries(entries: Vec<(UnixTime, SessionPolicy)>) -> Option<Self> {
        (!entries.is_empty()).then_some(PolicyHistory(entries))
    }

    /// Record that `policy` is in force from `from` on (no entry when it
    /// equals the current one). Entries older than the ceiling are dropped:
    /// no session lives that long.
    pub fn change(&mut self, from: UnixTime, policy: SessionPolicy) {
        if *self.current() == policy {
            return;
        }
        self.0.push((from, policy));
        let ceiling = self.0.iter().map(|(_, p)| p.max_lifetime_ceiling).max().unwrap_or_default();
        let horizon = UnixTime(from.as_secs().saturating_sub(ceiling.as_secs()));
        // Keep the last entry that began before the horizon: it was still in
        // force at the horizon.
        while self.0.len() > 1 && self.0[1].0 <= horizon {
            self.0.remove(0);
        }
    }

    /// Whether something last proven alive at `last_active` is still alive at
    /// `now`, where `deadline(policy)` is its deadline under one policy.
    ///
    /// It is dead when, under some policy in force after `last_active`, its
    /// deadline came no later than that policy's replacement (or, for the
    /// current policy, at or before `now`).
    pub fn is_alive(
        &self,
        last_active: UnixTime,
        now: UnixTime,
        deadline: impl Fn(&SessionPolicy) -> UnixTime,
    ) -> bool {
        let n = self.0.len();
        for (i, (_, policy)) in self.0.iter().enumerate() {
            let end = if i + 1 < n { Some(self.0[i + 1].0) } else { None };
            // Only a policy replaced strictly before the last activity is
            // irrelevant; in the same second the order is unknown, so it
            // still counts (fail closed).
            if end.is_some_and(|end| end < last_active) {
                continue;
            }
            let d = deadline(policy);
            // A deadline falling in the very second the policy was replaced
            // counts as death: time has one-second resolution, and a session
            // observed dead in that second must stay dead (fail closed).
            let died = match end {
                Some(end) => d <= end && d <= now,
                None => d <= now,
            };
            if died {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod history_tests {
    use super::*;

    const T0: UnixTime = UnixTime(1_700_000_000);

    fn with_max(max: Secs) -> SessionPolicy {
        SessionPolicy { max_lifetime: max, idle_timeout: IdleTimeout::Off, ..SessionPolicy::default() }
    }

    fn absolute(signed_in: UnixTime) -> impl Fn(&SessionPolicy) -> UnixTime {
        move |p| signed_in.plus(p.max_lifetime)
    }

    #[test]
    fn a_shortened_max_lifetime_kills_older_sessions_at_the_next_check() {
        let mut h = PolicyHistory::new(T0, with_max(Secs::hours(12)));
        let signed_in = T0.plus(Secs::hours(1));
        let now = signed_in.plus(Secs::hours(3));
        assert!(h.is_alive(now, now, absolute(signed_in)));
        h.change(now, with_max(Secs::hours(2)));
        assert!(!h.is_alive(now, now, absolute(signed_in)), "3 h old, new max 2 h: dead");
        let fresh = now;
        assert!(h.is_alive(fresh, fresh.plus(Secs::minutes(119)), absolute(fresh)));
    }

    #[test]
    fn loosening_never_revives_a_session_that_died_meanwhile() {
        let mut h = PolicyHistory::new(T0, with_max(Secs::hours(12)));
        let signed_in = T0;
        let last_active = T0.plus(Secs::minutes(30));
        h.change(T0.plus(Secs::hours(1)), with_max(Secs::hours(2))); // dies at T0+2h
        h.change(T0.plus(Secs::hours(5)), with_max(Secs::hours(12))); // loosened again
        let now = T0.plus(Secs::hours(6));
        assert!(!h.is_alive(last_active, now, absolute(signed_in)), "died at T0+2h under the stricter policy");
        // A session whose deadline under the strict policy fell after it was replaced survives.
        let late = T0.plus(Secs::hours(4));
        assert!(h.is_alive(late, now, absolute(late)));
    }

    #[test]
    fn a_death_in_the_second_of_a_loosening_is_still_a_death() {
        let mut h = PolicyHistory::new(T0, with_max(Secs::hours(12)));
        h.change(T0, with_max(Secs::new(1)));
        h.change(T0.plus(Secs::new(1)), with_max(Secs::hours(12)));
        assert!(!h.is_alive(T0, T0.plus(Secs::new(5)), absolute(T0)));
    }

    #[test]
    fn shortened_and_restored_in_the_second_of_the_last_activity_still_kills() {
        // Signed in at T0, active at T0+1, shortened and restored at T0+1.
        let mut h = PolicyHistory::new(T0, with_max(Secs::hours(12)));
        h.change(T0.plus(Secs::new(1)), with_max(Secs::new(1)));
        h.change(T0.plus(Secs::new(1)), with_max(Secs::hours(12)));
        assert!(!h.is_alive(T0.plus(Secs::new(1)), T0.plus(Secs::new(2)), absolute(T0)));
    }

    #[test]
    fn activity_after_a_policy_was_replaced_makes_it_irrelevant() {
        let mut h = PolicyHistory::new(T0, with_max(Secs::hours(1)));
        h.change(T0.plus(Secs::minutes(10)), with_max(Secs::hours(12)));
        // Signed in at T0; proven alive at T0+20min (after the change).
        assert!(h.is_alive(T0.plus(Secs::minutes(20)), T0.plus(Secs::hours(3)), absolute(T0)));
    }

    #[test]
    fn an_unchanged_policy_adds_no_entry_and_old_entries_are_pruned() {
        let mut h = PolicyHistory::new(T0, SessionPolicy::default());
        h.change(T0.plus(Secs::hours(1)), SessionPolicy::default());
        assert_eq!(h.entries().len(), 1);
        h.change(T0.plus(Secs::hours(1)), with_max(Secs::hours(2)));
        h.change(T0.plus(Secs::days(40)), with_max(Secs::hours(3)));
        h.change(T0.plus(Secs::days(80)), with_max(Secs::hours(4)));
        assert_eq!(h.entries().len(), 2, "only what was in force within the ceiling is kept");
        assert_eq!(h.current().max_lifetime, Secs::hours(4));
    }
}
