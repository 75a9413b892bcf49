//! The store side of the shared attempt throttles (SPEC 7): every
//! [`Store`] counts failures for all replicas through
//! [`SharedCounts`](crate::oauth::throttle::SharedCounts).

use crate::clock::UnixTime;
use crate::oauth::throttle::{BoxFuture, SharedCounts, ThrottleKey, ThrottleRules, ThrottleState};
use crate::store::Store;

/// A store error costs the shared count, never the request: the local
/// throttle still applies.
impl<S: Store> SharedCounts for S {
    fn read(&self, key: ThrottleKey) -> BoxFuture<'_, Option<ThrottleState>> {
        Box::pin(async move {
            self.shared_throttle(&key)
                .await
                .inspect_err(
                    |e| tracing::warn!(error = %e, "reading a shared throttle failed; counting in memory only"),
                )
                .ok()
                .flatten()
        })
    }
    fn failed(&self, key: ThrottleKey, rules: ThrottleRules, now: UnixTime) -> BoxFuture<'_, Option<ThrottleState>> {
        Box::pin(async move {
            self.throttle_failed(&key, &rules, now)
                .await
                .inspect_err(|e| tracing::warn!(error = %e, "counting a failure in a shared throttle failed"))
                .ok()
                .flatten()
        })
    }
    fn clear(&self, key: ThrottleKey) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Err(e) = self.clear_throttle(&key).await {
                tracing::warn!(error = %e, "clearing a shared throttle failed");
            }
        })
    }
}
