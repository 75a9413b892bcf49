//! Throttling of failed authentication attempts (SPEC 7: "sign-in and client
//! authentication are rate-limited per username/client and address").
//!
//! Each key (for example `client_id` + remote address) may fail `limit` times
//! within `window`; after that, attempts are refused until the window that
//! began with the first counted failure has passed. Successes are never
//! throttled and clear the key.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::UnixTime;
use crate::duration::Secs;

#[derive(Debug)]
pub struct FailureThrottle {
    limit: u32,
    window: Secs,
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    first_failure: UnixTime,
    failures: u32,
}

/// Above this many tracked keys, expired entries are dropped on insert.
const COMPACT_AT: usize = 10_000;

impl FailureThrottle {
    pub fn new(limit: u32, window: Secs) -> Self {
        FailureThrottle { limit, window, entries: Mutex::new(HashMap::new()) }
    }

    /// `Err(seconds to wait)` when `key` has used up its failures.
    pub fn check(&self, key: &str, now: UnixTime) -> Result<(), u64> {
        let Ok(entries) = self.entries.lock() else { return Ok(()) };
        match entries.get(key) {
            Some(e) if e.failures >= self.limit && now < e.first_failure.plus(self.window) => {
                Err(now.until(e.first_failure.plus(self.window)).max(1))
            }
            _ => Ok(()),
        }
    }

    /// Count one failure for `key`.
    pub fn fail(&self, key: &str, now: UnixTime) {
        let Ok(mut entries) = self.entries.lock() else { return };
        if entries.len() >= COMPACT_AT {
            let window = self.window;
            entries.retain(|_, e| now < e.first_failure.plus(window));
        }
        let e = entries.entry(key.to_owned()).or_insert(Entry { first_failure: now, failures: 0 });
        if now >= e.first_failure.plus(self.window) {
            *e = Entry { first_failure: now, failures: 0 };
        }
        e.failures = e.failures.saturating_add(1);
    }

    /// Forget `key` after a success.
    pub fn succeed(&self, key: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: UnixTime = UnixTime(1_700_000_000);

    #[test]
    fn blocks_after_the_limit_until_the_window_ends() {
        let t = FailureThrottle::new(3, Secs::minutes(5));
        for i in 0..3 {
            assert_eq!(t.check("web|127.0.0.1", T0.plus(Secs::new(i))), Ok(()));
            t.fail("web|127.0.0.1", T0.plus(Secs::new(i)));
        }
        assert_eq!(t.check("web|127.0.0.1", T0.plus(Secs::new(10))), Err(290));
        assert_eq!(t.check("web|10.0.0.9", T0.plus(Secs::new(10))), Ok(()), "other addresses are not affected");
        assert_eq!(t.check("web|127.0.0.1", T0.plus(Secs::minutes(5))), Ok(()), "the window has passed");
    }

    #[test]
    fn a_success_clears_the_count() {
        let t = FailureThrottle::new(2, Secs::minutes(5));
        t.fail("k", T0);
        t.succeed("k");
        t.fail("k", T0);
        assert_eq!(t.check("k", T0), Ok(()));
        t.fail("k", T0);
        assert!(t.check("k", T0).is_err());
    }

    #[test]
    fn old_failures_start_a_new_window() {
        let t = FailureThrottle::new(2, Secs::minutes(1));
        t.fail("k", T0);
        t.fail("k", T0.plus(Secs::minutes(2)));
        assert_eq!(t.check("k", T0.plus(Secs::minutes(2))), Ok(()), "only one failure in the current window");
    }
}
