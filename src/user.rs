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
    /// A disabled user cannot sign in; disabling revokes their sessions.
    pub disabled: bool,
    /// When the admin API created the user (`None` for config users).
    pub created_at: Option<crate::clock::UnixTime>,
    /// The groups the user is in (SPEC 14): each may tighten the session
    /// policy. Sorted, without repeats; every name a known group.
    pub groups: Vec<String>,
}

/// The shortest password a user may have (SPEC 9, 10): set through the
/// admin API, the console, the first-run page or the bootstrap variables.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Usernames are 1 to 64 characters, none of them control characters,
/// whitespace or '/', so they fit a URL path segment unescaped.
pub fn check_username(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > 64 {
        return Err("must be 1 to 64 characters".to_owned());
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace() || c == '/' || c == ':') {
        return Err(format!(
            "{name:?} must not contain whitespace, control characters, '/' or ':' (audit actors `client:<id>` use ':')"
        ));
    }
    Ok(())
}

/// A user's `groups` as given: each a valid group name, sorted, repeats
/// dropped.
pub fn normalise_groups(groups: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::with_capacity(groups.len());
    for g in groups {
        crate::policy::check_group_name(g)?;
        out.push(g.clone());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Display names (a user's or a client's `name`): any text but control
/// characters, which would break log lines and which PostgreSQL cannot
/// store (NUL), so both stores refuse the same names (SPEC 7).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.chars().any(char::is_control) {
        return Err(format!("{name:?} must not contain control characters"));
    }
    Ok(())
}

/// The stored form of a user (admin-created users live in the store; users
/// declared in the config file take precedence).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct StoredUser {
    pub username: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// argon2id PHC string.
    pub password_hash: String,
    #[serde(default)]
    pub permissions: Vec<String>,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub created_at: Option<crate::clock::UnixTime>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

impl From<&User> for StoredUser {
    fn from(u: &User) -> Self {
        StoredUser {
            username: u.username.clone(),
            name: u.name.clone(),
            email: u.email.clone(),
            password_hash: u.password_hash.as_str().to_owned(),
            permissions: u.permissions.iter().map(|p| p.as_str().to_owned()).collect(),
            disabled: u.disabled,
            created_at: u.created_at,
            groups: u.groups.clone(),
        }
    }
}

impl StoredUser {
    /// Parse back into a [`User`]; `Err` names what is corrupt.
    pub fn into_user(self) -> Result<User, String> {
        let password_hash = PasswordHashString::stored(&self.password_hash).map_err(|e| e.to_string())?;
        let permissions = self
            .permissions
            .iter()
            .map(|p| Permission::parse(p).ok_or_else(|| format!("unknown permission {p:?}")))
            .collect::<Result<_, _>>()?;
        Ok(User {
            username: self.username,
            name: self.name,
            email: self.email,
            password_hash,
            permissions,
            disabled: self.disabled,
            created_at: self.created_at,
            groups: self.groups,
        })
    }
}

/// Where users are looked up: configuration users, then stored ones.
pub trait Directory: Send + Sync {
    /// The enabled user `username`, `None` when unknown, disabled or
    /// unreadable.
    fn find<'a>(
        &'a self,
        username: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<User>> + Send + 'a>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn a_user_round_trips_through_its_stored_form() {
        let user = User {
            username: "bob".into(),
            name: Some("Bob".into()),
            email: None,
            password_hash: PasswordHashString::hash(&Secret::new("pw")).expect("hash"),
            permissions: [Permission::UsersEdit].into_iter().collect(),
            disabled: true,
            created_at: Some(crate::clock::UnixTime(1_700_000_000)),
            groups: vec!["admins".into()],
        };
        let back = StoredUser::from(&user).into_user().expect("valid");
        assert_eq!(back.username, "bob");
        assert!(back.password_hash.verify("pw"));
        assert_eq!(back.permissions, user.permissions);
        assert!(back.disabled);
        assert_eq!(back.created_at, user.created_at);
        assert_eq!(back.groups, user.groups);
        let mut bad = StoredUser::from(&user);
        bad.permissions.push("root".into());
        assert!(bad.into_user().is_err());
    }

    #[test]
    fn usernames_fit_a_path_segment() {
        assert!(check_username("alice").is_ok());
        assert!(check_username("").is_err());
        assert!(check_username("a/b").is_err());
        assert!(check_username("a b").is_err());
        assert!(check_username("client:ops").is_err(), "would read as a service account in the audit log");
    }
}
