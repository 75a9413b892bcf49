//! OIDC Back-Channel Logout 1.0: the deliveries of logout tokens, kept in a
//! durable outbox in the store until the client acknowledges them.

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::duration::Secs;

/// One logout token to deliver to one client for one killed session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub client_id: String,
    pub uri: String,
    pub sid: String,
    pub sub: String,
    pub created_at: UnixTime,
    pub attempts: u32,
    pub next_attempt_at: UnixTime,
}

/// First retry within 30 s of a failure, then exponential backoff (SPEC 5),
/// capped at one hour.
pub fn backoff(attempts: u32) -> Secs {
    let exp = attempts.saturating_sub(1).min(7);
    Secs::new((15u64 << exp).min(3600))
}

/// Give up after this many attempts (about 2 days of retries).
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
