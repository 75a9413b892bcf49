//! The global policies that have been in force ([`PolicyHistory`]), so a
//! session is judged against every policy since its last proven activity.

use super::*;
use crate::clock::UnixTime;

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
    /// `now`, where `deadline(policy)` is its deadline under one policy
    /// (see [`PolicyHistory::death`]).
    pub fn is_alive(
        &self,
        last_active: UnixTime,
        now: UnixTime,
        deadline: impl Fn(&SessionPolicy) -> UnixTime,
    ) -> bool {
        self.death(last_active, now, deadline).is_none()
    }

    /// When and under which policy something last proven alive at
    /// `last_active` died, `None` while it is alive at `now`, where
    /// `deadline(policy)` is its deadline under one policy.
    ///
    /// It is dead when, under some policy in force after `last_active`, its
    /// deadline came no later than that policy's replacement (or, for the
    /// current policy, at or before `now`); the first such deadline is the
    /// moment it died (SPEC 14: the deadline, not when it was noticed).
    pub fn death(
        &self,
        last_active: UnixTime,
        now: UnixTime,
        deadline: impl Fn(&SessionPolicy) -> UnixTime,
    ) -> Option<Death<'_>> {
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
                return Some(Death { at: d, policy });
            }
        }
        None
    }
}

/// When something died of a timeout, and the policy whose deadline passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Death<'a> {
    /// The deadline that passed.
    pub at: UnixTime,
    /// The policy in force then.
    pub policy: &'a SessionPolicy,
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
    fn death_names_the_deadline_and_the_policy_that_killed() {
        let mut h = PolicyHistory::new(T0, with_max(Secs::hours(12)));
        h.change(T0.plus(Secs::hours(1)), with_max(Secs::hours(2)));
        h.change(T0.plus(Secs::hours(5)), with_max(Secs::hours(12)));
        let death = h.death(T0, T0.plus(Secs::hours(6)), absolute(T0)).expect("dead");
        assert_eq!(death.at, T0.plus(Secs::hours(2)), "the deadline, not the moment it was noticed");
        assert_eq!(death.policy.max_lifetime, Secs::hours(2));
        assert!(h.death(T0.plus(Secs::hours(4)), T0.plus(Secs::hours(6)), absolute(T0.plus(Secs::hours(4)))).is_none());
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
