//! The one table of session-policy keys ([`POLICY_KEYS`]) and the values
//! every surface spells: the config file, the environment, the admin API,
//! the command line and the console all walk it.

use std::fmt;

use super::*;
use crate::duration::Secs;

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
    MaxSessions,
    OnSessionLimit,
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
/// timeouts only); a count (`max_sessions`); a mode (`on_session_limit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyValue {
    Secs(Secs),
    Off,
    /// Signed so that a negative value reaches the validator and is
    /// refused there, naming the key and the rule.
    Count(i64),
    Mode(OnSessionLimit),
}

impl PolicyValue {
    /// As the admin API writes it: integer seconds, `"off"`, an integer, or
    /// the mode's name.
    pub fn to_json(self) -> serde_json::Value {
        match self {
            PolicyValue::Off => serde_json::Value::from("off"),
            PolicyValue::Secs(d) => serde_json::Value::from(d.as_secs()),
            PolicyValue::Count(n) => serde_json::Value::from(n),
            PolicyValue::Mode(m) => serde_json::Value::from(m.as_str()),
        }
    }
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
            PolicyValue::Count(n) => fmt::Display::fmt(n, f),
            PolicyValue::Mode(m) => fmt::Display::fmt(m, f),
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
    /// A whole number (`max_sessions`).
    Count { get: fn(&PolicyLayer) -> Option<i64>, set: fn(&mut PolicyLayer, Option<i64>) },
    /// One of [`OnSessionLimit`].
    Mode { get: fn(&PolicyLayer) -> Option<OnSessionLimit>, set: fn(&mut PolicyLayer, Option<OnSessionLimit>) },
}

/// A value of the wrong kind for a key (`off` for a key that takes only
/// durations, a duration for `max_sessions`, ...).
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

    /// Whether the key takes durations (and perhaps `off`).
    pub fn is_duration(&self) -> bool {
        matches!(self.field, PolicyField::Duration { .. } | PolicyField::Idle { .. })
    }

    /// The value `layer` sets, if any.
    pub fn get(&self, layer: &PolicyLayer) -> Option<PolicyValue> {
        match self.field {
            PolicyField::Duration { get, .. } => get(layer).map(PolicyValue::Secs),
            PolicyField::Idle { get, .. } => get(layer).map(PolicyValue::from),
            PolicyField::Count { get, .. } => get(layer).map(PolicyValue::Count),
            PolicyField::Mode { get, .. } => get(layer).map(PolicyValue::Mode),
        }
    }

    /// Set (or, with `None`, drop) the value on `layer`; a value of another
    /// kind is refused.
    pub fn set(&self, layer: &mut PolicyLayer, value: Option<PolicyValue>) -> Result<(), OffNotAccepted> {
        match (self.field, value) {
            (PolicyField::Duration { set, .. }, None) => set(layer, None),
            (PolicyField::Duration { set, .. }, Some(PolicyValue::Secs(d))) => set(layer, Some(d)),
            (PolicyField::Idle { set, .. }, None) => set(layer, None),
            (PolicyField::Idle { set, .. }, Some(PolicyValue::Secs(d))) => set(layer, Some(IdleTimeout::After(d))),
            (PolicyField::Idle { set, .. }, Some(PolicyValue::Off)) => set(layer, Some(IdleTimeout::Off)),
            (PolicyField::Count { set, .. }, None) => set(layer, None),
            (PolicyField::Count { set, .. }, Some(PolicyValue::Count(n))) => set(layer, Some(n)),
            (PolicyField::Mode { set, .. }, None) => set(layer, None),
            (PolicyField::Mode { set, .. }, Some(PolicyValue::Mode(m))) => set(layer, Some(m)),
            _ => return Err(OffNotAccepted),
        }
        Ok(())
    }

    /// Copy the value of `from`, if it sets one, onto `to`; whether it did.
    pub(super) fn copy(&self, from: &PolicyLayer, to: &mut PolicyLayer) -> bool {
        match self.field {
            PolicyField::Duration { get, set } => get(from).map(|v| set(to, Some(v))).is_some(),
            PolicyField::Idle { get, set } => get(from).map(|v| set(to, Some(v))).is_some(),
            PolicyField::Count { get, set } => get(from).map(|v| set(to, Some(v))).is_some(),
            PolicyField::Mode { get, set } => get(from).map(|v| set(to, Some(v))).is_some(),
        }
    }

    /// What a value of this key looks like, for refusals.
    pub fn expected(&self) -> &'static str {
        match self.field {
            PolicyField::Duration { .. } => "a whole number of seconds (>= 0)",
            PolicyField::Idle { .. } => "a whole number of seconds (>= 0) or \"off\"",
            PolicyField::Count { .. } => "a whole number of sessions (0 = no limit)",
            PolicyField::Mode { .. } => "one of \"end_oldest\", \"ask\"",
        }
    }

    /// A valid value of the key's kind, the same for every key of a kind
    /// (for the tests that walk the table).
    #[cfg(test)]
    pub fn example(&self) -> PolicyValue {
        match self.field {
            PolicyField::Idle { .. } => PolicyValue::Off,
            PolicyField::Duration { .. } => PolicyValue::Secs(Secs::hours(1)),
            PolicyField::Count { .. } => PolicyValue::Count(3),
            PolicyField::Mode { .. } => PolicyValue::Mode(OnSessionLimit::Ask),
        }
    }

    /// A value as the admin API takes it (see [`PolicyValue::to_json`]);
    /// `Err` says what was expected.
    pub fn from_json(&self, value: &serde_json::Value) -> Result<PolicyValue, String> {
        let wrong = || format!("{} must be {}, not {value}", self.name, self.expected());
        match self.field {
            PolicyField::Idle { .. } if value.as_str() == Some("off") => Ok(PolicyValue::Off),
            PolicyField::Duration { .. } | PolicyField::Idle { .. } => {
                value.as_u64().map(|s| PolicyValue::Secs(Secs::new(s))).ok_or_else(wrong)
            }
            PolicyField::Count { .. } => value.as_i64().map(PolicyValue::Count).ok_or_else(wrong),
            PolicyField::Mode { .. } => {
                value.as_str().and_then(|s| s.parse().ok()).map(PolicyValue::Mode).ok_or_else(wrong)
            }
        }
    }

    /// A value as written in the environment (and on the command line):
    /// a duration like `1800`, `30m`, `1d12h`, or `off` where accepted.
    /// A whole number for `max_sessions`; `end_oldest` or `ask` for
    /// `on_session_limit`.
    pub fn parse(&self, raw: &str) -> Result<PolicyValue, String> {
        match self.field {
            PolicyField::Duration { .. } => raw.parse::<Secs>().map(PolicyValue::Secs).map_err(|e| e.to_string()),
            PolicyField::Idle { .. } => raw.parse::<IdleTimeout>().map(PolicyValue::from).map_err(|e| e.to_string()),
            PolicyField::Count { .. } => parse_count(raw).map(PolicyValue::Count),
            PolicyField::Mode { .. } => {
                raw.trim().parse().map(PolicyValue::Mode).map_err(|e: UnknownOnSessionLimit| e.to_string())
            }
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
    PolicyKeyDef {
        key: PolicyKey::MaxSessions,
        name: "max_sessions",
        env_var: "TENURE_SESSION_MAX_SESSIONS",
        description: "a user's live sessions at most; 0 = no limit",
        label: "Sessions per user",
        field: PolicyField::Count { get: |l| l.max_sessions, set: |l, v| l.max_sessions = v },
        effective: |p| PolicyValue::Count(i64::try_from(p.max_sessions).unwrap_or(i64::MAX)),
        admin_settable: true,
        floored: false,
    },
    PolicyKeyDef {
        key: PolicyKey::OnSessionLimit,
        name: "on_session_limit",
        env_var: "TENURE_SESSION_ON_SESSION_LIMIT",
        description: "a sign-in at the limit: `end_oldest` (the least recently active session ends) or `ask` (the \
                      user picks one to end)",
        label: "At the limit",
        field: PolicyField::Mode { get: |l| l.on_session_limit, set: |l, v| l.on_session_limit = v },
        effective: |p| PolicyValue::Mode(p.on_session_limit),
        admin_settable: true,
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
