//! Per-client overrides, which may only tighten the global policy, and the
//! deadline maths of one session ([`Limits`]): pure functions of the times
//! they are given.

use serde::{Deserialize, Serialize};

use super::*;
use crate::clock::UnixTime;
use crate::duration::Secs;

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
        self.validate_in(&format!("clients[{client_id}].session."), global)
    }

    /// [`ClientSessionOverride::validate`] with the keys named under
    /// `scope` (`clients[spa].session.`, `session.groups.admins.`).
    pub(super) fn validate_in(&self, scope: &str, global: &SessionPolicy) -> Result<(), PolicyError> {
        let scope = scope.to_owned();
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
