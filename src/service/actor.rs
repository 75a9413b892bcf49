//! Administration use cases (SPEC 10): users, clients, signing keys, and the
//! session-policy explain and preview. Each is one function that takes the
//! state, the acting principal and `now`, and returns a domain result; the
//! HTTP handlers (`http/admin.rs`), the CLI (through the API) and the console
//! call these, so every rule lives here once.

pub mod audit;
pub mod clients;
pub mod keys;
pub mod policy;
pub mod sessions;
pub mod settings;
pub mod setup;
pub mod users;

use crate::oauth::client::Permission;

/// Why an administration request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum AdminError {
    /// Bad input; the message names the field and the rule.
    Invalid(String),
    /// A session setting breaks a rule of SPEC 3; the message names the key
    /// and the rule.
    InvalidSetting(String),
    NotFound(String),
    /// The thing exists in a form that cannot change (declared in the
    /// config file), or the name is taken.
    Conflict(String),
    Forbidden(String),
    /// Every hashing slot stayed busy: retry shortly (503).
    Busy,
    /// A store or key failure; details go to the log, not the caller.
    Internal(String),
}

impl AdminError {
    pub fn internal(context: &str, e: impl std::fmt::Display) -> Self {
        tracing::error!(%context, error = %e, "administration failed");
        AdminError::Internal(context.to_owned())
    }

    /// A store failure: a value the store cannot hold is the caller's
    /// mistake (400); anything else is internal.
    pub fn store(context: &str, e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Refused(_) => AdminError::Invalid(
                "a value holds a character that cannot be stored (such as NUL); remove it and try again".into(),
            ),
            e => AdminError::internal(context, e),
        }
    }
}

pub type Result<T> = std::result::Result<T, AdminError>;

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
        .map_err(|_| AdminError::internal("generating a client secret", "no randomness"))?;
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
        Ok(Err(e)) => Err(AdminError::internal("hashing a secret", e)),
        Err(crate::secret::VerifyError::Busy) => Err(AdminError::Busy),
        Err(e) => Err(AdminError::internal("hashing a secret", format!("{e:?}"))),
    }
}
