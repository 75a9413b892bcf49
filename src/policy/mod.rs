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
//!
//! By concept: the key table in `keys.rs`, layers, sources and the validator
//! in `layers.rs`, per-client overrides and deadlines in `deadline.rs`, the
//! policies in force over time in `history.rs`; all re-exported here.

mod deadline;
mod groups;
mod history;
mod keys;
mod layers;
mod session_limit;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::duration::Secs;
pub use deadline::*;
pub use groups::*;
pub use history::*;
pub use keys::*;
pub use layers::*;
pub use session_limit::*;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::UnixTime;

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
            let value = d.example();
            d.set(&mut layer, Some(value)).expect("a value of the key's kind");
            assert_eq!(d.get(&layer), Some(value), "{}", d.name);
            let json = serde_json::to_value(&layer).expect("serialisable");
            assert_eq!(json, serde_json::json!({ d.name: value.to_json() }), "{} sets only its own field", d.name);
            assert_eq!(d.set(&mut layer, Some(PolicyValue::Off)).is_ok(), d.accepts_off(), "{}", d.name);
            assert_eq!(d.parse("off").is_ok(), d.accepts_off(), "{}", d.name);
            assert_eq!(d.from_json(&value.to_json()), Ok(value), "{}: the admin API reads what it writes", d.name);
            assert_eq!(d.parse(&value.to_string()), Ok(value), "{}: the environment reads what it shows", d.name);
            d.set(&mut layer, None).expect("clearing");
            assert!(layer.is_empty(), "{}", d.name);
        }
        // The effective value comes from the key's own field.
        let on_limit = |d: &PolicyKeyDef| matches!(d.field, PolicyField::Mode { .. });
        let distinct: serde_json::Map<String, serde_json::Value> = POLICY_KEYS
            .iter()
            .zip(1u64..)
            .map(|(d, n)| (d.name.to_owned(), if on_limit(d) { "ask".into() } else { n.into() }))
            .collect();
        let p: SessionPolicy = serde_json::from_value(distinct.into()).expect("every field");
        for (d, n) in POLICY_KEYS.iter().zip(1u64..) {
            let expected = match d.field {
                PolicyField::Count { .. } => PolicyValue::Count(i64::try_from(n).expect("small")),
                PolicyField::Mode { .. } => PolicyValue::Mode(OnSessionLimit::Ask),
                _ => PolicyValue::Secs(Secs::new(n)),
            };
            assert_eq!((d.effective)(&p), expected, "{}", d.name);
        }
    }

    #[test]
    fn the_session_limit_keys_refuse_bad_values_naming_the_key_and_the_rule() {
        assert_eq!(message("max_sessions = -1"), "session.max_sessions must be 0 (no limit) or more, not -1");
        let e = toml::from_str::<PolicyLayer>("max_sessions = 2.5").expect_err("not a whole number").to_string();
        assert!(e.contains("max_sessions") && e.contains("whole number of sessions"), "{e}");
        let e = toml::from_str::<PolicyLayer>("on_session_limit = \"newest\"").expect_err("unknown mode").to_string();
        assert!(e.contains("on_session_limit") && e.contains("end_oldest") && e.contains("ask"), "{e}");
        let p = resolve_file("max_sessions = 3\non_session_limit = \"ask\"").expect("valid");
        assert_eq!((p.max_sessions, p.on_session_limit), (3, OnSessionLimit::Ask));
        assert_eq!(resolve_file("").expect("defaults").max_sessions, 0, "no limit by default");
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
