//! A user's revocation marker ("every session of this user up to sequence
//! N is revoked") keeps the earlier markers of the last 30 days beside the
//! newest, so a session an earlier marker ended keeps its own reason and
//! time in the listings (SPEC 14: the reason never disagrees with the audit
//! event of the step that ended it). Liveness needs only the newest (its
//! sequence covers every earlier one); the earlier ones only say why.

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::session::Revoked;
use crate::session::end::ENDED_LISTED;

/// An earlier marker of the same user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarlierMarker {
    pub seq: u64,
    pub revoked: Revoked,
}

/// At most this many earlier markers are kept (a user revoked more often
/// within 30 days lists the oldest of them under the next one's reason).
const KEPT: usize = 16;

/// The earlier markers a new marker written at `at` keeps: the previous
/// marker (`seq`, `revoked`) and its own earlier ones, those still listed.
pub fn carry(previous: Option<(u64, &Revoked, &[EarlierMarker])>, at: UnixTime) -> Vec<EarlierMarker> {
    let Some((seq, revoked, earlier)) = previous else { return Vec::new() };
    let mut kept: Vec<EarlierMarker> = earlier
        .iter()
        .cloned()
        .chain(std::iter::once(EarlierMarker { seq, revoked: revoked.clone() }))
        .filter(|m| at < m.revoked.at.plus(ENDED_LISTED))
        .collect();
    let excess = kept.len().saturating_sub(KEPT);
    kept.drain(..excess);
    kept
}

/// The revocation that ended a session of sequence `session_seq`, under the
/// newest marker (`seq`, `revoked`) and its `earlier` ones: the oldest
/// marker that covers it.
pub fn covering<'a>(
    session_seq: u64,
    seq: u64,
    revoked: &'a Revoked,
    earlier: &'a [EarlierMarker],
) -> Option<&'a Revoked> {
    if session_seq > seq {
        return None;
    }
    let oldest = earlier.iter().filter(|m| session_seq <= m.seq).min_by_key(|m| m.seq);
    Some(oldest.map_or(revoked, |m| &m.revoked))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revoked(at: u64, reason: &str) -> Revoked {
        Revoked { at: UnixTime(at), reason: reason.into(), by: None }
    }

    #[test]
    fn each_session_keeps_the_reason_of_the_marker_that_ended_it() {
        let reset = revoked(1_000, "credentials_changed");
        let disable = revoked(2_000, "user_disabled");
        let earlier = carry(Some((10, &reset, &[])), UnixTime(2_000));
        assert_eq!(earlier, [EarlierMarker { seq: 10, revoked: reset.clone() }]);
        assert_eq!(covering(7, 20, &disable, &earlier).map(|r| r.reason.as_str()), Some("credentials_changed"));
        assert_eq!(covering(10, 20, &disable, &earlier).map(|r| r.reason.as_str()), Some("credentials_changed"));
        assert_eq!(covering(11, 20, &disable, &earlier).map(|r| r.reason.as_str()), Some("user_disabled"));
        assert_eq!(covering(21, 20, &disable, &earlier), None, "signed in after both: alive");
    }

    #[test]
    fn earlier_markers_are_kept_while_their_sessions_are_listed_and_at_most_sixteen() {
        let old = revoked(1_000, "admin_revoked");
        let later = UnixTime(1_000).plus(ENDED_LISTED);
        assert!(carry(Some((10, &old, &[])), later).is_empty(), "30 days on: no longer listed");
        assert_eq!(carry(Some((10, &old, &[])), UnixTime(later.0 - 1)).len(), 1);
        let mut earlier = Vec::new();
        for i in 0..40u64 {
            earlier = carry(Some((i, &revoked(1_000 + i, "admin_revoked"), &earlier)), UnixTime(2_000));
        }
        assert_eq!(earlier.len(), 16);
        assert_eq!(earlier[0].seq, 24, "the oldest go first");
    }
}
