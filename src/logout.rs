//! OIDC Back-Channel Logout 1.0: what to deliver, kept in a durable outbox in
//! the store until delivered.
//!
//! Revoking every session of a user is one marker write (O(1)); its logout
//! tokens are fanned out later from a single outbox entry, so the revocation
//! stays fast and nothing is lost if the process dies before the fan-out.

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::duration::Secs;

/// One outbox entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub kind: DeliveryKind,
    /// The user (`sub` of the logout token).
    pub sub: String,
    pub created_at: UnixTime,
    pub attempts: u32,
    pub next_attempt_at: UnixTime,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DeliveryKind {
    /// A logout token for session `sid` to one client.
    Logout { client_id: String, uri: String, sid: String },
    /// Expand into `Logout` deliveries for every session of `sub` stored
    /// up to sequence `seq` (a user-level revocation).
    UserFanout { seq: u64 },
}

/// First retry within 30 s of a failure, then exponential backoff (SPEC 5),
/// capped at about half an hour.
pub fn backoff(attempts: u32) -> Secs {
    let exp = attempts.saturating_sub(1).min(7);
    Secs::new(15u64 << exp)
}

/// Give up after this many attempts (about a day of retries).
pub const MAX_ATTEMPTS: u32 = 50;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_retry_comes_within_30_s_then_backs_off() {
        assert_eq!(backoff(1), Secs::new(15));
        assert_eq!(backoff(2), Secs::new(30));
        assert_eq!(backoff(3), Secs::new(60));
        assert_eq!(backoff(8), Secs::new(1920));
        assert_eq!(backoff(20), Secs::new(1920));
    }
}
