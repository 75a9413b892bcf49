//! Throttling of authentication attempts (SPEC 7: "sign-in and client
//! authentication are rate-limited per username/client and address").
//!
//! - An attempt is counted *before* its password or secret is checked: the
//!   caller [`reserves`](AttemptThrottle::reserve) a slot, atomically, and
//!   settles it afterwards (failure, success, or released when nothing was
//!   decided). Concurrent attempts therefore cannot all slip under the limit
//!   while the first ones are still being verified.
//! - A key may fail `limit` times within `window`. The failure that reaches
//!   the limit locks the key for `lock_base`, doubled for each further lock
//!   (exponential backoff) up to `lock_cap`. The backoff is forgotten once
//!   the last lock has been over for `lock_cap`, or at once after a success.
//! - Keys are SHA-256 digests of their parts ([`ThrottleKey`]), never the
//!   attacker's text, and the table holds at most `capacity` keys: when full,
//!   finished entries go first, then the least recently seen.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::UnixTime;
use crate::duration::Secs;

/// The digest of what a throttle counts (a client id or a username, and
/// an address): fixed size whatever the request sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ThrottleKey([u8; 32]);

impl ThrottleKey {
    /// SHA-256 over the length-prefixed `parts`, so `("a|b", "c")` and
    /// `("a", "b|c")` differ.
    pub fn of(parts: &[&str]) -> ThrottleKey {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for part in parts {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part.as_bytes());
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(ctx.finish().as_ref());
        ThrottleKey(key)
    }

    pub fn as_bytes(&self) -> [u8; 32] {
        self.0
    }
}

/// How many failures a key may have, and how long it is locked after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottleRules {
    pub limit: u32,
    pub window: Secs,
    pub lock_base: Secs,
    pub lock_cap: Secs,
}

impl ThrottleRules {
    /// How long the `strikes`-th lock (0-based) lasts: `lock_base * 2^strikes`,
    /// at most `lock_cap`.
    pub fn lock_for(&self, strikes: u32) -> Secs {
        let factor = 1u64.checked_shl(strikes.min(32)).unwrap_or(u64::MAX);
        Secs::new(self.lock_base.as_secs().saturating_mul(factor).min(self.lock_cap.as_secs()))
    }
}

/// Why an attempt may not go ahead now, and when to come back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The key failed too often; it is locked for this many more seconds.
    Locked { retry_after_secs: u64 },
    /// As many attempts as the key may still fail are being verified right
    /// now; come back once they are decided.
    Busy { retry_after_secs: u64 },
}

impl Refusal {
    pub fn retry_after_secs(self) -> u64 {
        match self {
            Refusal::Locked { retry_after_secs } | Refusal::Busy { retry_after_secs } => retry_after_secs,
        }
    }
}

/// The keys one throttle tracks by default.
pub const DEFAULT_CAPACITY: usize = 50_000;

#[derive(Debug)]
pub struct AttemptThrottle {
    rules: ThrottleRules,
    capacity: usize,
    entries: Mutex<HashMap<ThrottleKey, Entry>>,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    window_start: UnixTime,
    /// Failures counted in the current window.
    failures: u32,
    /// Attempts reserved and not settled yet.
    pending: u32,
    /// Locks so far (the backoff exponent).
    strikes: u32,
    locked_until: UnixTime,
    last_seen: UnixTime,
}

impl Entry {
    fn new(now: UnixTime) -> Entry {
        Entry { window_start: now, failures: 0, pending: 0, strikes: 0, locked_until: now, last_seen: now }
    }

    /// Whether the entry still holds anything that matters at `now`.
    fn is_live(&self, rules: &ThrottleRules, now: UnixTime) -> bool {
        self.pending > 0
            || now < self.locked_until
            || (self.failures > 0 && now < self.window_start.plus(rules.window))
            || (self.strikes > 0 && now < self.locked_until.plus(rules.lock_cap))
    }
}

impl AttemptThrottle {
    pub fn new(rules: ThrottleRules) -> Self {
        Self::with_capacity(rules, DEFAULT_CAPACITY)
    }

    pub fn with_capacity(rules: ThrottleRules, capacity: usize) -> Self {
        AttemptThrottle { rules, capacity: capacity.max(1), entries: Mutex::new(HashMap::new()) }
    }

    pub fn rules(&self) -> &ThrottleRules {
        &self.rules
    }

    /// How many keys are tracked now.
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `key` is locked at `now` (without reserving anything).
    pub fn check(&self, key: &ThrottleKey, now: UnixTime) -> Result<(), Refusal> {
        let Ok(entries) = self.entries.lock() else { return Ok(()) };
        match entries.get(key) {
            Some(e) if now < e.locked_until => {
                Err(Refusal::Locked { retry_after_secs: now.until(e.locked_until).max(1) })
            }
            _ => Ok(()),
        }
    }

    /// Forget `key` (a success that needed no reservation).
    pub fn clear(&self, key: &ThrottleKey) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(key);
        }
    }

    /// Reserve one attempt for `key` at `now`: refused while the key is
    /// locked, or while failed plus undecided attempts already reach the
    /// limit. The reservation must be settled; dropping it releases it.
    pub fn reserve(&self, key: ThrottleKey, now: UnixTime) -> Result<Reservation<'_>, Refusal> {
        let mut entries = match self.entries.lock() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !entries.contains_key(&key) && entries.len() >= self.capacity {
            self.make_room(&mut entries, now);
        }
        let rules = self.rules;
        let e = entries.entry(key).or_insert_with(|| Entry::new(now));
        e.last_seen = now;
        if now < e.locked_until {
            return Err(Refusal::Locked { retry_after_secs: now.until(e.locked_until).max(1) });
        }
        if e.strikes > 0 && now >= e.locked_until.plus(rules.lock_cap) {
            e.strikes = 0;
        }
        if now >= e.window_start.plus(rules.window) {
            e.window_start = now;
            e.failures = 0;
        }
        if e.failures.saturating_add(e.pending) >= rules.limit {
            return Err(Refusal::Busy { retry_after_secs: 1 });
        }
        e.pending += 1;
        Ok(Reservation { throttle: self, key, settled: false })
    }

    /// Drop finished entries; if that is not enough, the least recently
    /// seen eighth of the table, unlocked keys before locked ones (never a
    /// key with an attempt in flight).
    fn make_room(&self, entries: &mut HashMap<ThrottleKey, Entry>, now: UnixTime) {
        let rules = self.rules;
        entries.retain(|_, e| e.is_live(&rules, now));
        if entries.len() < self.capacity {
            return;
        }
        let mut candidates: Vec<(bool, UnixTime, ThrottleKey)> = entries
            .iter()
            .filter(|(_, e)| e.pending == 0)
            .map(|(k, e)| (now < e.locked_until, e.last_seen, *k))
            .collect();
        candidates.sort_unstable_by_key(|(locked, seen, _)| (*locked, *seen));
        for (_, _, key) in candidates.into_iter().take((self.capacity / 8).max(1)) {
            entries.remove(&key);
        }
    }

    fn settle(&self, key: &ThrottleKey, outcome: Outcome, now: UnixTime) {
        let mut entries = match self.entries.lock() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        };
        let rules = self.rules;
        match outcome {
            Outcome::Succeeded => {
                entries.remove(key);
            }
            Outcome::Released => {
                if let Some(e) = entries.get_mut(key) {
                    e.pending = e.pending.saturating_sub(1);
                }
            }
            Outcome::Failed => {
                let e = entries.entry(*key).or_insert_with(|| Entry::new(now));
                e.pending = e.pending.saturating_sub(1);
                if now >= e.window_start.plus(rules.window) {
                    e.window_start = now;
                    e.failures = 0;
                }
                e.failures = e.failures.saturating_add(1);
                e.last_seen = now;
                if e.failures >= rules.limit {
                    e.locked_until = now.plus(rules.lock_for(e.strikes));
                    e.strikes = e.strikes.saturating_add(1);
                    e.failures = 0;
                    e.window_start = now;
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Outcome {
    Failed,
    Succeeded,
    Released,
}

/// One reserved attempt. Settle it with [`failed`](Self::failed),
/// [`succeeded`](Self::succeeded) or [`released`](Self::released); if it is
/// dropped unsettled (the request was abandoned), it is released.
#[derive(Debug)]
#[must_use = "settle the reservation with failed, succeeded or released"]
pub struct Reservation<'a> {
    throttle: &'a AttemptThrottle,
    key: ThrottleKey,
    settled: bool,
}

impl Reservation<'_> {
    /// The attempt failed: count it (and lock the key at the limit).
    pub fn failed(mut self, now: UnixTime) {
        self.settled = true;
        self.throttle.settle(&self.key, Outcome::Failed, now);
    }

    /// The attempt succeeded: forget the key's failures and backoff.
    pub fn succeeded(mut self) {
        self.settled = true;
        self.throttle.settle(&self.key, Outcome::Succeeded, UnixTime(0));
    }

    /// Nothing was decided, or the success must not wipe the key's history
    /// (a per-address count): give the slot back.
    pub fn released(mut self) {
        self.settled = true;
        self.throttle.settle(&self.key, Outcome::Released, UnixTime(0));
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.throttle.settle(&self.key, Outcome::Released, UnixTime(0));
        }
    }
}

/// A key's failures as every replica counts them (with PostgreSQL, a row of
/// the `throttles` table). Replicas share only failures and locks: an
/// attempt in flight is counted by the replica that runs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottleState {
    /// Failures in the window that started at `window_start`.
    pub failures: u32,
    pub window_start: UnixTime,
    /// Locks so far (the backoff exponent).
    pub strikes: u32,
    pub locked_until: UnixTime,
}

impl Default for ThrottleState {
    fn default() -> Self {
        ThrottleState { failures: 0, window_start: UnixTime(0), strikes: 0, locked_until: UnixTime(0) }
    }
}

impl ThrottleState {
    /// The state after one more failure at `now`: the same rules as
    /// [`AttemptThrottle`] (window, lock at the limit, doubling backoff
    /// forgotten `lock_cap` after the last lock).
    pub fn after_failure(self, rules: &ThrottleRules, now: UnixTime) -> ThrottleState {
        let mut s = self;
        if s.strikes > 0 && now >= s.locked_until.plus(rules.lock_cap) {
            s.strikes = 0;
        }
        if now >= s.window_start.plus(rules.window) {
            s.window_start = now;
            s.failures = 0;
        }
        s.failures = s.failures.saturating_add(1);
        if s.failures >= rules.limit {
            s.locked_until = now.plus(rules.lock_for(s.strikes));
            s.strikes = s.strikes.saturating_add(1);
            s.failures = 0;
            s.window_start = now;
        }
        s
    }

    /// Until when the record matters: its window, or its lock and backoff.
    pub fn keep_until(&self, rules: &ThrottleRules) -> UnixTime {
        self.window_start.plus(rules.window).max(self.locked_until.plus(rules.lock_cap))
    }
}

/// What a throttle backed by the store needs from it (implemented for every
/// [`Store`](crate::store::Store) in `store/throttle.rs`; a single process
/// keeps nothing there).
pub trait SharedCounts: Send + Sync {
    fn read(&self, key: ThrottleKey) -> BoxFuture<'_, Option<ThrottleState>>;
    fn failed(&self, key: ThrottleKey, rules: ThrottleRules, now: UnixTime) -> BoxFuture<'_, Option<ThrottleState>>;
    fn clear(&self, key: ThrottleKey) -> BoxFuture<'_, ()>;
}

/// Nothing shared: one process counts in memory only.
pub struct Unshared;

impl SharedCounts for Unshared {
    fn read(&self, _: ThrottleKey) -> BoxFuture<'_, Option<ThrottleState>> {
        Box::pin(async { None })
    }
    fn failed(&self, _: ThrottleKey, _: ThrottleRules, _: UnixTime) -> BoxFuture<'_, Option<ThrottleState>> {
        Box::pin(async { None })
    }
    fn clear(&self, _: ThrottleKey) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// What [`SharedCounts`] returns: a future that may be sent across threads.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

impl AttemptThrottle {
    /// Take in what every replica counted for `key` (a lock another replica
    /// set holds here too).
    pub fn absorb(&self, key: ThrottleKey, shared: &ThrottleState, now: UnixTime) {
        let mut entries = match self.entries.lock() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        };
        if now >= shared.locked_until && shared.strikes == 0 && !entries.contains_key(&key) {
            return;
        }
        let e = entries.entry(key).or_insert_with(|| Entry::new(now));
        e.locked_until = e.locked_until.max(shared.locked_until);
        e.strikes = e.strikes.max(shared.strikes);
        e.last_seen = now;
    }

    /// Before an attempt on `key`: take in the shared count. Whether the
    /// store has failures of `key` on record (a success then clears them).
    pub async fn consult(&self, shared: &dyn SharedCounts, key: ThrottleKey, now: UnixTime) -> bool {
        match shared.read(key).await {
            Some(state) => {
                self.absorb(key, &state, now);
                true
            }
            None => false,
        }
    }

    /// After a failure of `key` counted here: count it for every replica
    /// too, and take in the lock it may have set.
    pub async fn share_failure(&self, shared: &dyn SharedCounts, key: ThrottleKey, now: UnixTime) {
        if let Some(state) = shared.failed(key, self.rules, now).await {
            self.absorb(key, &state, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_counts_lock_at_the_limit_and_back_off_like_the_local_throttle() {
        let r = rules(3);
        let mut s = ThrottleState::default();
        for i in 0..2 {
            s = s.after_failure(&r, T0.plus(Secs::new(i)));
        }
        assert_eq!((s.failures, s.strikes), (2, 0));
        assert!(s.locked_until <= T0, "not locked below the limit");
        s = s.after_failure(&r, T0.plus(Secs::new(2)));
        assert_eq!(s.locked_until, T0.plus(Secs::new(2)).plus(Secs::minutes(5)), "the third failure locks");
        assert_eq!((s.failures, s.strikes), (0, 1));
        let after = s.locked_until;
        for i in 0..3 {
            s = s.after_failure(&r, after.plus(Secs::new(i)));
        }
        assert_eq!(s.locked_until, after.plus(Secs::new(2)).plus(Secs::minutes(10)), "the second lock doubles");
        // A window that ran out starts again.
        let later = s.locked_until.plus(Secs::minutes(30));
        let t = s.after_failure(&r, later);
        assert_eq!((t.failures, t.window_start), (1, later));
        assert_eq!(t.strikes, 2, "the backoff is remembered until lock_cap after the last lock");
        let much_later = s.locked_until.plus(Secs::hours(1));
        assert_eq!(s.after_failure(&r, much_later).strikes, 0, "and forgotten after");
        assert_eq!(s.keep_until(&r), s.locked_until.plus(Secs::hours(1)));
    }

    #[test]
    fn a_lock_set_by_another_replica_refuses_here() {
        let throttle = AttemptThrottle::new(rules(5));
        let key = ThrottleKey::of(&["user", "alice", "10.0.0.1"]);
        let shared = ThrottleState { failures: 0, window_start: T0, strikes: 1, locked_until: T0.plus(Secs::new(300)) };
        throttle.absorb(key, &shared, T0);
        assert_eq!(
            throttle.reserve(key, T0.plus(Secs::new(10))).err(),
            Some(Refusal::Locked { retry_after_secs: 290 })
        );
        assert!(throttle.reserve(key, T0.plus(Secs::new(300))).is_ok(), "free once the shared lock is over");
        let other = ThrottleKey::of(&["user", "bob", "10.0.0.1"]);
        throttle.absorb(other, &ThrottleState { window_start: T0, failures: 1, ..Default::default() }, T0);
        assert_eq!(throttle.len(), 1, "a shared count without a lock takes no room");
    }

    const T0: UnixTime = UnixTime(1_700_000_000);

    fn rules(limit: u32) -> ThrottleRules {
        ThrottleRules { limit, window: Secs::minutes(5), lock_base: Secs::minutes(5), lock_cap: Secs::hours(1) }
    }

    fn at(secs: u64) -> UnixTime {
        T0.plus(Secs::new(secs))
    }

    fn key(s: &str) -> ThrottleKey {
        ThrottleKey::of(&[s, "127.0.0.1"])
    }

    #[test]
    fn locks_at_the_limit_until_the_lock_ends() {
        let t = AttemptThrottle::new(rules(3));
        for i in 0..3 {
            t.reserve(key("web"), at(i)).expect("under the limit").failed(at(i));
        }
        assert_eq!(t.reserve(key("web"), at(10)).err(), Some(Refusal::Locked { retry_after_secs: 292 }));
        assert_eq!(t.check(&key("web"), at(10)), Err(Refusal::Locked { retry_after_secs: 292 }));
        assert!(t.reserve(ThrottleKey::of(&["web", "10.0.0.9"]), at(10)).is_ok(), "other addresses are not affected");
        assert!(t.reserve(key("web"), at(2 + 300)).is_ok(), "the lock has ended");
    }

    #[test]
    fn undecided_attempts_count_against_the_limit() {
        let t = AttemptThrottle::new(rules(5));
        let held: Vec<_> = (0..5).map(|_| t.reserve(key("alice"), T0).expect("a slot")).collect();
        assert_eq!(t.reserve(key("alice"), T0).err(), Some(Refusal::Busy { retry_after_secs: 1 }));
        let mut held = held.into_iter();
        held.next().expect("one").released();
        let again = t.reserve(key("alice"), T0).expect("a released slot is free again");
        drop(again);
        assert!(t.reserve(key("alice"), T0).is_ok(), "dropping a reservation releases it");
    }

    #[test]
    fn a_success_clears_the_key_and_its_backoff() {
        let t = AttemptThrottle::new(rules(2));
        t.reserve(key("k"), T0).expect("slot").failed(T0);
        t.reserve(key("k"), T0).expect("slot").succeeded();
        t.reserve(key("k"), T0).expect("slot").failed(T0);
        assert!(t.reserve(key("k"), T0).is_ok(), "only one failure since the success");
    }

    #[test]
    fn each_lock_doubles_up_to_the_cap() {
        let r = rules(1);
        assert_eq!(r.lock_for(0), Secs::minutes(5));
        assert_eq!(r.lock_for(1), Secs::minutes(10));
        assert_eq!(r.lock_for(3), Secs::minutes(40));
        assert_eq!(r.lock_for(4), Secs::hours(1));
        assert_eq!(r.lock_for(60), Secs::hours(1));
        let t = AttemptThrottle::new(r);
        let mut now = T0;
        for expected in [300, 600, 1200, 2400, 3600, 3600] {
            t.reserve(key("k"), now).expect("unlocked").failed(now);
            assert_eq!(t.check(&key("k"), now), Err(Refusal::Locked { retry_after_secs: expected }));
            now = now.plus(Secs::new(expected));
        }
        // An hour after the last lock ended, the backoff starts over.
        let later = now.plus(Secs::hours(1));
        t.reserve(key("k"), later).expect("unlocked").failed(later);
        assert_eq!(t.check(&key("k"), later), Err(Refusal::Locked { retry_after_secs: 300 }));
    }

    #[test]
    fn old_failures_start_a_new_window() {
        let t = AttemptThrottle::new(rules(2));
        t.reserve(key("k"), T0).expect("slot").failed(T0);
        let later = T0.plus(Secs::minutes(6));
        t.reserve(key("k"), later).expect("slot").failed(later);
        assert!(t.check(&key("k"), later).is_ok(), "only one failure in the current window");
    }

    #[test]
    fn the_table_is_bounded_and_keys_are_digests() {
        let t = AttemptThrottle::with_capacity(rules(5), 64);
        let huge = "x".repeat(64 * 1024);
        for i in 0..1000u64 {
            let id = format!("{huge}{i}");
            t.reserve(ThrottleKey::of(&[&id, "127.0.0.1"]), at(i)).expect("slot").failed(at(i));
        }
        assert!(t.len() <= 64, "{} keys", t.len());
        assert_ne!(ThrottleKey::of(&["a|b", "c"]), ThrottleKey::of(&["a", "b|c"]));
        // The most recent keys are still counted.
        let recent = ThrottleKey::of(&[&format!("{huge}999"), "127.0.0.1"]);
        for i in 0..4 {
            t.reserve(recent, at(1000 + i)).expect("slot").failed(at(1000 + i));
        }
        assert!(t.check(&recent, at(1004)).is_err(), "the fifth failure of a recent key locks it");
    }
}
