//! The layers a policy enters by (defaults, file, environment, admin), where
//! each effective value came from, and the one validator,
//! [`PolicyLayers::resolve`], with its refusals ([`PolicyError`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::*;
use crate::duration::Secs;

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
    /// SPEC 14: kept signed so that a negative value reaches the validator,
    /// which refuses it naming the key and the rule.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "count")]
    pub max_sessions: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_session_limit: Option<OnSessionLimit>,
}

/// `max_sessions` as written in the file: an integer, or a string of one
/// (as the environment gives it).
fn count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = Option<i64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a whole number of sessions (0 = no limit)")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            i64::try_from(v).map(Some).map_err(|_| E::custom(format!("{v} is too large")))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            parse_count(v).map(Some).map_err(E::custom)
        }
    }
    d.deserialize_any(V)
}

/// A `max_sessions` value as the environment and the command line spell it.
pub fn parse_count(raw: &str) -> Result<i64, String> {
    raw.trim().parse::<i64>().map_err(|_| format!("{raw:?} is not a whole number of sessions (0 = no limit)"))
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
    /// SPEC 14: a user's live sessions at most (`0`: no limit).
    #[serde(default)]
    pub max_sessions: u64,
    /// What a sign-in at the limit does.
    #[serde(default)]
    pub on_session_limit: OnSessionLimit,
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
            max_sessions: 0,
            on_session_limit: OnSessionLimit::EndOldest,
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

    /// A refusal of `key` with its own words (group rules).
    pub(super) fn other(key: &'static str, message: String) -> Self {
        PolicyError { key, message: message.into() }
    }

    pub(super) fn not_positive(scope: &str, key: &'static str) -> Self {
        PolicyError { key, message: format!("{scope}{key} must be greater than 0").into() }
    }

    pub(super) fn exceeds(
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

pub(super) const GLOBAL_SCOPE: &str = "session.";

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
        if let Some(n) = merged.max_sessions
            && n < 0
        {
            let key = PolicyKey::MaxSessions.name();
            return Err(PolicyError {
                key,
                message: format!("{GLOBAL_SCOPE}{key} must be 0 (no limit) or more, not {n}").into(),
            });
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
            // A negative value never gets here: `resolve` refuses it first.
            max_sessions: layer.max_sessions.map_or(d.max_sessions, |n| u64::try_from(n).unwrap_or(0)),
            on_session_limit: layer.on_session_limit.unwrap_or(d.on_session_limit),
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
