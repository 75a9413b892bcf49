//! Who acts in an administration use case (SPEC 10), and the secrets those
//! use cases make: users, clients, signing keys, sessions, settings, the
//! audit log and first-run setup (`service::{users, clients, keys, sessions,
//! settings, explain, audit, setup}`). Each is one function that takes the
//! state, the acting principal and `now`, and returns a domain result or a
//! [`ServiceError`]; the HTTP handlers (`http/admin.rs`), the CLI (through
//! the API) and the console call these, so every rule lives here once.

use super::error::{Result, ServiceError};
use crate::oauth::client::Permission;

/// Who acts: named in the audit log; permissions decide what may change.
#[derive(Clone, Debug)]
pub struct Actor {
    pub name: String,
    pub administer: bool,
}

impl Actor {
    pub fn new(name: impl Into<String>, permissions: &std::collections::BTreeSet<Permission>) -> Self {
        Actor { name: name.into(), administer: permissions.contains(&Permission::SystemAdminister) }
    }
}

/// A random secret for a client: 256 bits, base64url.
pub(crate) fn new_client_secret() -> Result<String> {
    use base64::Engine;
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ServiceError::internal_in("generating a client secret", "no randomness"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Hash a password or secret with argon2id, within the server's bound on
/// concurrent hashing (503 `Busy` when every slot stays taken).
pub(crate) async fn hash_secret(
    state: &crate::service::AppState,
    value: String,
) -> Result<crate::secret::PasswordHashString> {
    match state.hashing.hash(&crate::secret::Secret::new(value)).await {
        Ok(Ok(hash)) => Ok(hash),
        Ok(Err(e)) => Err(ServiceError::internal_in("hashing a secret", e)),
        Err(crate::secret::VerifyError::Busy) => Err(ServiceError::busy_hashing()),
        Err(e) => Err(ServiceError::internal_in("hashing a secret", format!("{e:?}"))),
    }
}
