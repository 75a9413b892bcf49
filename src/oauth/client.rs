//! Registered clients (RFC 6749 section 2) and the parsed values they hold.
//!
//! Every field is parsed into its own type when a client is built, so code
//! that holds a [`Client`] never re-checks a redirect URI, a grant type or a
//! scope.

use std::collections::BTreeSet;
use std::fmt;

use crate::policy::ClientSessionOverride;
use crate::secret::PasswordHashString;

/// RFC 6749 3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope(String);

impl Scope {
    pub fn parse(s: &str) -> Option<Scope> {
        let ok =
            !s.is_empty() && s.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
        ok.then(|| Scope(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A set of scopes, rendered space-separated in sorted order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeSet(BTreeSet<Scope>);

impl ScopeSet {
    /// Parse a space-delimited `scope` parameter. `Err` names the bad token.
    pub fn parse(s: &str) -> Result<ScopeSet, String> {
        let mut set = BTreeSet::new();
        for token in s.split(' ').filter(|t| !t.is_empty()) {
            set.insert(Scope::parse(token).ok_or_else(|| token.to_owned())?);
        }
        Ok(ScopeSet(set))
    }
    pub fn from_scopes(scopes: impl IntoIterator<Item = Scope>) -> ScopeSet {
        ScopeSet(scopes.into_iter().collect())
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s.as_str() == scope)
    }
    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }
    /// The scopes of `self` that `allowed` does not hold.
    pub fn not_in<'a>(&'a self, allowed: &'a ScopeSet) -> impl Iterator<Item = &'a Scope> + 'a {
        self.0.difference(&allowed.0)
    }
    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            f.write_str(s.as_str())?;
        }
        Ok(())
    }
}

/// The grant types tenure knows (SPEC 4, `POST /token`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
    TokenExchange,
    /// RFC 8628 (SPEC 15): the device authorization grant.
    DeviceCode,
}

impl GrantType {
    pub const ALL: [GrantType; 5] = [
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::ClientCredentials,
        GrantType::TokenExchange,
        GrantType::DeviceCode,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
            GrantType::TokenExchange => "urn:ietf:params:oauth:grant-type:token-exchange",
            GrantType::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
        }
    }

    pub fn parse(s: &str) -> Option<GrantType> {
        GrantType::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

/// A permission carried in the `permissions` claim (SPEC 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    SystemAdminister,
    UsersEdit,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::SystemAdminister => "system:administer",
            Permission::UsersEdit => "users:edit",
        }
    }
    pub fn parse(s: &str) -> Option<Permission> {
        [Permission::SystemAdminister, Permission::UsersEdit].into_iter().find(|p| p.as_str() == s)
    }
}

/// An absolute redirect URI, compared by exact string (RFC 9700 2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectUri(String);

impl RedirectUri {
    pub fn parse(s: &str) -> Result<RedirectUri, String> {
        let url = url::Url::parse(s).map_err(|e| format!("{s:?} is not an absolute URI: {e}"))?;
        if url.fragment().is_some() {
            return Err(format!("{s:?} must not contain a fragment (RFC 6749 3.1.2)"));
        }
        if url.cannot_be_a_base() {
            return Err(format!("{s:?} is not a hierarchical URI"));
        }
        Ok(RedirectUri(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A web origin (`scheme://host[:port]`) allowed to call the token endpoint
/// from a browser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebOrigin(String);

impl WebOrigin {
    pub fn parse(s: &str) -> Result<WebOrigin, String> {
        let url = url::Url::parse(s).map_err(|e| format!("{s:?} is not an origin: {e}"))?;
        let origin = url.origin().ascii_serialization();
        if origin == "null" || origin != s.trim_end_matches('/') {
            return Err(format!("{s:?} is not an origin: give only scheme://host[:port], like {origin:?}"));
        }
        Ok(WebOrigin(origin))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What kind of application a client is (OIDC Dynamic Client Registration
/// 1.0 2, `application_type`). Only a native app may use a loopback
/// redirect URI on any port (RFC 8252 7.3); a web client's redirect URIs
/// match exactly (RFC 9700 2.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ApplicationType {
    #[default]
    Web,
    Native,
}

impl ApplicationType {
    pub fn parse(s: &str) -> Option<ApplicationType> {
        match s {
            "web" => Some(ApplicationType::Web),
            "native" => Some(ApplicationType::Native),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ApplicationType::Web => "web",
            ApplicationType::Native => "native",
        }
    }
}

/// How a client authenticates at the token endpoint.
#[derive(Clone, Debug)]
pub enum ClientKind {
    /// `token_endpoint_auth_method = none`.
    Public,
    /// `client_secret_basic` or `client_secret_post`.
    Confidential { secret_hash: PasswordHashString },
}

/// A registered client.
#[derive(Clone, Debug)]
pub struct Client {
    pub id: String,
    pub name: Option<String>,
    pub kind: ClientKind,
    /// `web` (the default) or `native`: whether loopback redirect URIs may
    /// vary their port.
    pub application_type: ApplicationType,
    pub redirect_uris: Vec<RedirectUri>,
    pub web_origins: Vec<WebOrigin>,
    pub grant_types: BTreeSet<GrantType>,
    pub scopes: ScopeSet,
    pub backchannel_logout_uri: Option<String>,
    /// Where RP-initiated logout may send the browser afterwards (OIDC
    /// RP-Initiated Logout 1.0 3): exact-string match, like redirect URIs.
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    pub token_exchange_audiences: Vec<String>,
    pub permissions: BTreeSet<Permission>,
    pub session: Option<ClientSessionOverride>,
    /// OIDC Dynamic Client Registration 2: the algorithm of this client's
    /// ID tokens; `None`: `signing_alg`.
    pub id_token_signed_response_alg: Option<crate::token::SigningAlg>,
}

impl Client {
    pub fn is_public(&self) -> bool {
        matches!(self.kind, ClientKind::Public)
    }
    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_tokens_follow_rfc6749() {
        assert!(Scope::parse("openid").is_some());
        assert!(Scope::parse("orders:read").is_some());
        assert!(Scope::parse("").is_none());
        assert!(Scope::parse("a\"b").is_none());
        assert!(Scope::parse("a\\b").is_none());
        assert!(Scope::parse("é").is_none());
        assert_eq!(ScopeSet::parse("b  a b").map(|s| s.to_string()), Ok("a b".to_owned()));
        assert_eq!(ScopeSet::parse("ok bad\"one"), Err("bad\"one".to_owned()));
    }

    #[test]
    fn redirect_uris_are_absolute_without_fragment() {
        assert!(RedirectUri::parse("http://127.0.0.1:9000/callback").is_ok());
        assert!(RedirectUri::parse("com.example.app:/cb").is_ok());
        assert!(RedirectUri::parse("/callback").is_err());
        assert!(RedirectUri::parse("https://a.example/cb#x").is_err());
    }

    #[test]
    fn web_origins_are_bare_origins() {
        assert_eq!(WebOrigin::parse("http://127.0.0.1:9001").map(|o| o.0), Ok("http://127.0.0.1:9001".to_owned()));
        assert_eq!(WebOrigin::parse("https://app.example/").map(|o| o.0), Ok("https://app.example".to_owned()));
        assert!(WebOrigin::parse("https://app.example/path").is_err());
        assert!(WebOrigin::parse("nonsense").is_err());
    }

    #[test]
    fn grant_types_round_trip() {
        for g in GrantType::ALL {
            assert_eq!(GrantType::parse(g.as_str()), Some(g));
        }
        assert_eq!(GrantType::parse("password"), None, "no password grant (RFC 9700 2.4)");
        assert_eq!(GrantType::parse("implicit"), None);
    }
}
