//! Time as a value.
//!
//! Every rule in tenure that depends on time takes `now: UnixTime` as a
//! parameter. The clock is read once per request at the HTTP edge (or once per
//! background tick) through the [`Clock`] trait, so tests drive expiry exactly
//! and instantly with a [`ManualClock`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::duration::Secs;

/// Seconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct UnixTime(pub u64);

impl UnixTime {
    pub const EPOCH: UnixTime = UnixTime(0);

    pub fn as_secs(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at the far future rather than wrapping.
    pub fn plus(self, d: Secs) -> UnixTime {
        UnixTime(self.0.saturating_add(d.as_secs()))
    }

    /// Whole seconds from `self` until `later`, 0 when `later` is not later.
    pub fn until(self, later: UnixTime) -> u64 {
        later.0.saturating_sub(self.0)
    }

    /// RFC 3339 in UTC, the format of every timestamp in the admin API.
    pub fn to_rfc3339(self) -> String {
        let secs = i64::try_from(self.0).unwrap_or(i64::MAX);
        match chrono::DateTime::from_timestamp(secs, 0) {
            Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            None => "9999-12-31T23:59:59Z".to_owned(),
        }
    }
}

impl fmt::Display for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// Where "now" comes from.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> UnixTime;
}

/// The operating system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place that reads the wall clock
    fn now(&self) -> UnixTime {
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        UnixTime(secs)
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    pub fn at(t: UnixTime) -> Self {
        ManualClock(Arc::new(AtomicU64::new(t.0)))
    }

    pub fn advance(&self, d: Secs) {
        self.0.fetch_add(d.as_secs(), Ordering::SeqCst);
    }

    pub fn set(&self, t: UnixTime) {
        self.0.store(t.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        UnixTime(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::at(UnixTime(1_000));
        assert_eq!(clock.now(), UnixTime(1_000));
        clock.advance(Secs::new(30));
        assert_eq!(clock.now(), UnixTime(1_030));
        clock.set(UnixTime(5));
        assert_eq!(clock.now(), UnixTime(5));
    }

    #[test]
    fn rfc3339_is_utc_with_seconds() {
        assert_eq!(UnixTime(0).to_rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(UnixTime(1_700_000_000).to_rfc3339(), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(UnixTime(u64::MAX).plus(Secs::new(10)), UnixTime(u64::MAX));
        assert_eq!(UnixTime(10).until(UnixTime(4)), 0);
        assert_eq!(UnixTime(4).until(UnixTime(10)), 6);
    }
}
