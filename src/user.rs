//! Users who sign in at the issuer. Config-declared for now; the store holds
//! admin-created ones later behind the same type.

use std::collections::BTreeSet;

use crate::oauth::client::Permission;
use crate::secret::PasswordHashString;

#[derive(Clone, Debug)]
pub struct User {
    /// Also the `sub` of the user's tokens; never equal to a client id.
    pub username: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub password_hash: PasswordHashString,
    pub permissions: BTreeSet<Permission>,
}

/// Usernames are 1 to 64 characters, none of them control characters,
/// whitespace or '/', so they fit a URL path segment unescaped.
pub fn check_username(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > 64 {
        return Err("must be 1 to 64 characters".to_owned());
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace() || c == '/') {
        return Err(format!("{name:?} must not contain whitespace, control characters or '/'"));
    }
    Ok(())
}
