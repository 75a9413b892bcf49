//! DPoP proofs (RFC 9449) checked and remembered: the proof's own checks
//! are pure (`oauth::dpop`); whether its `jti` was seen is asked of the
//! store (11.1), in one atomic insert-if-absent, so a proof accepted at one
//! replica is refused at every other (SPEC 12: nothing per process).

use crate::clock::UnixTime;
use crate::oauth::dpop::{DpopError, Expected, Proof, replay_key, replay_until, replayed};
use crate::service::AppState;
use crate::store::{Store, StoreError};

/// Why a proof was not taken.
#[derive(Debug)]
pub enum ProofRefusal {
    /// The proof is wrong, stale, lacks the nonce, or was seen before.
    Dpop(DpopError),
    /// The store could not say whether it was seen.
    Store(StoreError),
}

/// The `DPoP` header values checked against `expected` (with the server's
/// nonce when `require_nonce`), and the proof remembered: `None` without a
/// header; a refusal when it was seen before, here or at another replica.
pub async fn check(
    state: &AppState,
    headers: &[&[u8]],
    expected: &Expected<'_>,
    require_nonce: bool,
    now: UnixTime,
) -> Result<Option<Proof>, ProofRefusal> {
    let Some(proof) = state.dpop.check_with(headers, expected, require_nonce, now).map_err(ProofRefusal::Dpop)? else {
        return Ok(None);
    };
    let new = state.store.remember_proof(&replay_key(&proof), replay_until(&proof), now).await;
    match new {
        Ok(true) => Ok(Some(proof)),
        Ok(false) => Err(ProofRefusal::Dpop(replayed())),
        Err(e) => Err(ProofRefusal::Store(e)),
    }
}
