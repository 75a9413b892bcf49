//! The built-in client `console` (SPEC 9): the client the web console
//! signs in as. It is not listed in `[[clients]]`, cannot be changed at run
//! time, and no configured or created client may take its id.

use super::client::Client;

/// The built-in client the console signs in as.
pub const CLIENT_ID: &str = "console";
/// The scopes it asks for: `admin` makes the access token carry the user's
/// `permissions`, which decide the pages shown.
pub const SCOPES: &str = "openid profile email admin";

/// The console's redirect URI under `issuer`.
pub fn redirect_uri(issuer: &str) -> String {
    format!("{}/console/callback", issuer.trim_end_matches('/'))
}

/// The built-in client `console` (SPEC 9): public, PKCE, code and refresh
/// grants, the console's scopes, redirect URI `<issuer>/console/callback`.
/// It is not listed in `[[clients]]` and cannot be changed at run time.
pub fn builtin_client(issuer: &str) -> Result<Client, String> {
    use super::client::{ClientKind, GrantType, RedirectUri, ScopeSet};
    Ok(Client {
        id: CLIENT_ID.to_owned(),
        name: Some("tenure console".to_owned()),
        kind: ClientKind::Public,
        redirect_uris: vec![RedirectUri::parse(&redirect_uri(issuer))?],
        web_origins: Vec::new(),
        grant_types: [GrantType::AuthorizationCode, GrantType::RefreshToken].into_iter().collect(),
        scopes: ScopeSet::parse(SCOPES)?,
        backchannel_logout_uri: None,
        post_logout_redirect_uris: Vec::new(),
        token_exchange_audiences: Vec::new(),
        permissions: Default::default(),
        session: None,
        application_type: Default::default(),
        id_token_signed_response_alg: None,
    })
}
