//! One definition of a client's settings and their validation, used by the
//! config file (`[[clients]]`) and by the admin API (`POST|PUT
//! /admin/clients`), so both refuse the same things with the same words.

use std::collections::{BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use super::client::{
    ApplicationType, Client, ClientKind, GrantType, Permission, RedirectUri, Scope, ScopeSet, WebOrigin,
};
use crate::policy::{ClientSessionOverride, SessionPolicy};
use crate::secret::PasswordHashString;
use crate::token::SigningAlg;

/// A client as an administrator writes it: every field in its plain form.
/// Secrets are not part of it (they are hashed on their way in).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub web_origins: Vec<String>,
    #[serde(default)]
    pub grant_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    pub token_exchange_audiences: Vec<String>,
    #[serde(default)]
    pub permissions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<ClientSessionOverride>,
    /// `web` (the default) or `native` (RFC 8252: any loopback port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_type: Option<String>,
    /// `RS256` or the issuer's `signing_alg` (OIDC Core 15.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_signed_response_alg: Option<String>,
}

/// A refused client setting: the field (relative to the client) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: message.into() }
    }
}

/// Client ids: 1 to 200 printable characters without ':' (a client id is
/// also a token subject and must not look like one of our prefixes).
pub fn check_client_id(id: &str) -> Result<(), FieldError> {
    if id.is_empty() || id.len() > 200 || id.chars().any(|ch| ch.is_control() || ch == ':' || ch == '/') {
        return Err(FieldError::new("id", "must be 1 to 200 printable characters without ':' or '/'"));
    }
    Ok(())
}

pub fn parse_permissions(field: &str, raw: &[String]) -> Result<BTreeSet<Permission>, FieldError> {
    raw.iter()
        .map(|p| {
            Permission::parse(p).ok_or_else(|| {
                FieldError::new(field, format!("{p:?} is not a permission; known: system:administer, users:edit"))
            })
        })
        .collect()
}

impl ClientSpec {
    /// Validate every field and build the client. `secret_hash` is the
    /// client's secret (confidential clients need one, public ones must not
    /// have one). Per-client session limits may only tighten `policy`.
    pub fn build(
        self,
        secret_hash: Option<PasswordHashString>,
        policy: &SessionPolicy,
        signing_alg: SigningAlg,
    ) -> Result<Client, FieldError> {
        check_client_id(&self.id)?;
        if let Some(name) = &self.name {
            crate::user::check_name(name).map_err(|m| FieldError::new("name", m))?;
        }
        let id_token_signed_response_alg = self
            .id_token_signed_response_alg
            .as_deref()
            .map(|raw| {
                SigningAlg::parse(raw).filter(|a| *a == signing_alg || *a == SigningAlg::RS256).ok_or_else(|| {
                    let offered = if signing_alg == SigningAlg::RS256 {
                        "RS256".to_owned()
                    } else {
                        format!("{signing_alg} (signing_alg) or RS256")
                    };
                    FieldError::new(
                        "id_token_signed_response_alg",
                        format!("{raw:?} is not offered for ID tokens; use {offered}"),
                    )
                })
            })
            .transpose()?;
        let grant_types: BTreeSet<GrantType> = self
            .grant_types
            .iter()
            .map(|g| {
                GrantType::parse(g).ok_or_else(|| {
                    FieldError::new(
                        "grant_types",
                        format!(
                            "{g:?} is not supported; use authorization_code, refresh_token, client_credentials, {} or {}",
                            GrantType::TokenExchange.as_str(),
                            GrantType::DeviceCode.as_str()
                        ),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        if grant_types.is_empty() {
            return Err(FieldError::new("grant_types", "must list at least one grant type"));
        }
        let kind = match (self.public, secret_hash) {
            (true, Some(_)) => return Err(FieldError::new("secret", "a public client has no secret")),
            (true, None) => ClientKind::Public,
            (false, Some(secret_hash)) => ClientKind::Confidential { secret_hash },
            (false, None) => {
                return Err(FieldError::new(
                    "secret",
                    "a confidential client needs secret or secret_hash (or set public = true)",
                ));
            }
        };
        if self.public {
            for g in [GrantType::ClientCredentials, GrantType::TokenExchange] {
                if grant_types.contains(&g) {
                    return Err(FieldError::new(
                        "grant_types",
                        format!("{} needs client authentication; a public client cannot use it", g.as_str()),
                    ));
                }
            }
        }
        let application_type = match self.application_type.as_deref() {
            None => ApplicationType::Web,
            Some(raw) => ApplicationType::parse(raw).ok_or_else(|| {
                FieldError::new("application_type", format!("{raw:?} is not an application type; use web or native"))
            })?,
        };
        let redirect_uris = self
            .redirect_uris
            .iter()
            .map(|u| RedirectUri::parse(u).map_err(|m| FieldError::new("redirect_uris", m)))
            .collect::<Result<Vec<_>, _>>()?;
        if grant_types.contains(&GrantType::AuthorizationCode) && redirect_uris.is_empty() {
            return Err(FieldError::new("redirect_uris", "authorization_code needs at least one redirect URI"));
        }
        let web_origins = self
            .web_origins
            .iter()
            .map(|o| WebOrigin::parse(o).map_err(|m| FieldError::new("web_origins", m)))
            .collect::<Result<Vec<_>, _>>()?;
        if !web_origins.is_empty() && !self.public {
            return Err(FieldError::new(
                "web_origins",
                "CORS is offered to public clients only; a confidential client calls from its server",
            ));
        }
        let scope_names = self.scopes.unwrap_or_else(|| vec!["openid".into(), "profile".into(), "email".into()]);
        let scopes = ScopeSet::from_scopes(
            scope_names
                .iter()
                .map(|s| {
                    Scope::parse(s).ok_or_else(|| {
                        FieldError::new("scopes", format!("{s:?} is not a valid scope token (RFC 6749 3.3)"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        );
        let backchannel_logout_uri = self
            .backchannel_logout_uri
            .map(|u| {
                url::Url::parse(&u)
                    .ok()
                    .filter(|p| matches!(p.scheme(), "http" | "https") && p.fragment().is_none())
                    .map(|_| u.clone())
                    .ok_or_else(|| {
                        FieldError::new(
                            "backchannel_logout_uri",
                            format!("{u:?} is not an absolute http(s) URL without fragment"),
                        )
                    })
            })
            .transpose()?;
        let post_logout_redirect_uris = self
            .post_logout_redirect_uris
            .iter()
            .map(|u| RedirectUri::parse(u).map_err(|m| FieldError::new("post_logout_redirect_uris", m)))
            .collect::<Result<Vec<_>, _>>()?;
        if !self.token_exchange_audiences.is_empty() && !grant_types.contains(&GrantType::TokenExchange) {
            return Err(FieldError::new(
                "token_exchange_audiences",
                format!("is set but grant_types does not include {}", GrantType::TokenExchange.as_str()),
            ));
        }
        let mut seen = HashSet::new();
        if let Some(a) = self.token_exchange_audiences.iter().find(|a| a.is_empty() || !seen.insert(a.as_str())) {
            return Err(FieldError::new("token_exchange_audiences", format!("{a:?} is empty or listed twice")));
        }
        let permissions = parse_permissions("permissions", &self.permissions)?;
        if !permissions.is_empty() && !grant_types.contains(&GrantType::ClientCredentials) {
            return Err(FieldError::new(
                "permissions",
                "are carried by client-credentials tokens; add client_credentials to grant_types",
            ));
        }
        if let Some(o) = &self.session {
            // The policy error already names `clients[id].session.<key>`.
            o.validate(&self.id, policy).map_err(|e| FieldError::new("session", e.to_string()))?;
        }
        Ok(Client {
            id: self.id,
            name: self.name,
            kind,
            application_type,
            redirect_uris,
            web_origins,
            grant_types,
            scopes,
            backchannel_logout_uri,
            post_logout_redirect_uris,
            token_exchange_audiences: self.token_exchange_audiences,
            permissions,
            session: self.session,
            id_token_signed_response_alg,
        })
    }

    /// The settings of an existing client, as it would be written.
    pub fn of(client: &Client) -> ClientSpec {
        let strings = |v: &[RedirectUri]| v.iter().map(|u| u.as_str().to_owned()).collect();
        ClientSpec {
            id: client.id.clone(),
            name: client.name.clone(),
            public: client.is_public(),
            application_type: Some(client.application_type.as_str().to_owned()),
            redirect_uris: strings(&client.redirect_uris),
            web_origins: client.web_origins.iter().map(|o| o.as_str().to_owned()).collect(),
            grant_types: client.grant_types.iter().map(|g| g.as_str().to_owned()).collect(),
            scopes: Some(client.scopes.iter().map(|s| s.as_str().to_owned()).collect()),
            backchannel_logout_uri: client.backchannel_logout_uri.clone(),
            post_logout_redirect_uris: strings(&client.post_logout_redirect_uris),
            token_exchange_audiences: client.token_exchange_audiences.clone(),
            permissions: client.permissions.iter().map(|p| p.as_str().to_owned()).collect(),
            session: client.session.clone(),
            id_token_signed_response_alg: client.id_token_signed_response_alg.map(|a| a.as_str().to_owned()),
        }
    }
}

/// A client kept in the store (created through the admin API).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct StoredClient {
    pub spec: ClientSpec,
    /// argon2id PHC string; `None` for public clients.
    #[serde(default)]
    pub secret_hash: Option<String>,
    pub created_at: crate::clock::UnixTime,
}

impl StoredClient {
    /// Rebuild the client. Validation against the current policy is not
    /// repeated for the session override: a later tightening of the global
    /// policy already caps the override (`SessionPolicy::limits`).
    pub fn into_client(self, signing_alg: SigningAlg) -> Result<Client, String> {
        let hash = self.secret_hash.map(|h| PasswordHashString::stored(&h).map_err(|e| e.to_string())).transpose()?;
        let mut spec = self.spec;
        let session = spec.session.take();
        let mut client = spec
            .build(hash, &SessionPolicy::default(), signing_alg)
            .map_err(|e| format!("{}: {}", e.field, e.message))?;
        client.session = session;
        Ok(client)
    }
}

/// Clients from `[[clients]]` TOML as the config file writes them (a plain
/// `secret` is hashed), for unit tests of the protocol rules, which must not
/// reach up to `config` for their fixtures.
#[cfg(test)]
pub(crate) fn clients_from_toml(text: &str) -> Vec<Client> {
    #[derive(Deserialize)]
    struct File {
        clients: Vec<toml::Table>,
    }
    let file: File = toml::from_str(text).expect("[[clients]] TOML");
    file.clients
        .into_iter()
        .map(|mut table| {
            let secret = table.remove("secret").and_then(|v| v.as_str().map(str::to_owned));
            let hash = secret.map(|s| PasswordHashString::hash(&crate::secret::Secret::new(s)).expect("hash"));
            let spec: ClientSpec = table.try_into().expect("a client spec");
            spec.build(hash, &SessionPolicy::default(), SigningAlg::ES256).expect("a valid client")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str) -> ClientSpec {
        ClientSpec {
            id: id.into(),
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            redirect_uris: vec!["http://127.0.0.1:9000/cb".into()],
            ..ClientSpec::default()
        }
    }

    #[test]
    fn a_spec_round_trips_through_a_client() {
        let hash = PasswordHashString::hash(&crate::secret::Secret::new("s")).expect("hash");
        let client = spec("web").build(Some(hash), &SessionPolicy::default(), SigningAlg::ES256).expect("valid");
        let again = ClientSpec::of(&client);
        assert_eq!(again.id, "web");
        assert_eq!(again.redirect_uris, vec!["http://127.0.0.1:9000/cb".to_owned()]);
        assert_eq!(again.grant_types, vec!["authorization_code".to_owned(), "refresh_token".to_owned()]);
    }

    #[test]
    fn bad_fields_are_named() {
        let p = SessionPolicy::default();
        let es = SigningAlg::ES256;
        assert_eq!(spec("a:b").build(None, &p, es).expect_err("id").field, "id");
        assert_eq!(spec("web").build(None, &p, es).expect_err("secret").field, "secret");
        let mut s = spec("spa");
        s.public = true;
        s.redirect_uris.clear();
        assert_eq!(s.build(None, &p, es).expect_err("redirect").field, "redirect_uris");
        let mut s = spec("spa");
        s.public = true;
        s.session = Some(ClientSessionOverride {
            max_lifetime: Some(crate::duration::Secs::hours(13)),
            ..ClientSessionOverride::default()
        });
        let e = s.build(None, &p, es).expect_err("loosening");
        assert_eq!(e.field, "session");
        assert!(e.message.contains("must not exceed session.max_lifetime (12h)"), "{}", e.message);
    }
}
