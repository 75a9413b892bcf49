//! Minting the tokens of a family: the access token (RFC 9068), the ID token
//! (OIDC Core 2, 12.2) and the refresh token of the family's current
//! generation, with the lifetimes of SPEC 3 and 4.

use serde::Serialize;

use super::client::Client;
use super::error::OAuthError;
use crate::clock::UnixTime;
use crate::policy::PolicyHistory;
use crate::session::family::{self, Family};
use crate::session::refresh_token::RefreshKey;
use crate::token::claims::{AccessClaims, IdClaims, new_jti};
use crate::token::jwt::{self, TokenType};
use crate::token::keys::KeySet;

/// RFC 6749 5.1 response, with SPEC 4's `refresh_expires_in` and
/// `session_expires_in`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// RFC 8693 2.2.1, for exchanges.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
    pub token_type: &'static str,
    pub expires_in: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Seconds until the refresh token dies: the earlier of the deadlines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_expires_in: Option<u64>,
    /// Seconds until the absolute deadline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_expires_in: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// What minting needs besides the family.
#[derive(Clone, Copy)]
pub struct Minter<'a> {
    pub keys: &'a KeySet,
    pub clients: &'a super::client_auth::ClientRegistry,
    /// The user directory (config, then store).
    pub users: &'a dyn crate::user::Directory,
    pub refresh_key: &'a RefreshKey,
    pub history: &'a PolicyHistory,
    /// The group policies in force (SPEC 14).
    pub groups: &'a crate::policy::Groups,
    pub issuer: &'a str,
    pub now: UnixTime,
}

/// `history` as `username` sees it: every policy tightened by the
/// strictest values of the user's `groups` (SPEC 14). No group defined, or
/// the user in none: `history` itself, without reading the user (a config
/// user is read from memory, a stored one with one point read).
pub async fn history_for<'h>(
    history: &'h PolicyHistory,
    groups: &crate::policy::Groups,
    users: &dyn crate::user::Directory,
    username: &str,
) -> std::borrow::Cow<'h, PolicyHistory> {
    if groups.0.is_empty() {
        return std::borrow::Cow::Borrowed(history);
    }
    let member_of = users.find(username).await.map(|u| u.groups).unwrap_or_default();
    let strictest = crate::policy::strictest(groups.of(&member_of).into_iter().map(|(_, g)| g));
    match history.for_groups(&strictest) {
        Some(h) => std::borrow::Cow::Owned(h),
        None => std::borrow::Cow::Borrowed(history),
    }
}

fn internal(e: impl std::fmt::Display) -> OAuthError {
    tracing::error!(error = %e, "minting tokens failed");
    OAuthError::server_error()
}

impl<'a> Minter<'a> {
    /// The policies in force as `username` sees them: tightened by the
    /// strictest values of the user's groups (SPEC 14). No group defined,
    /// or the user in none: the global history, without reading the user
    /// (a config user is read from memory, a stored one with one point read).
    pub async fn history_for(&self, username: &str) -> std::borrow::Cow<'a, PolicyHistory> {
        history_for(self.history, self.groups, self.users, username).await
    }

    /// Tokens for `family` (its current generation), for `scope` (the
    /// family's, or a narrower one on refresh), with an ID token when the
    /// scope has `openid` (`nonce` only at code exchange). With `jkt` (the
    /// thumbprint of the request's DPoP key) the access token is bound to
    /// that key (`cnf.jkt`, `token_type: DPoP`, RFC 9449 5, 6.1).
    pub async fn mint(
        &self,
        family: &Family,
        client: &Client,
        scope: &str,
        nonce: Option<String>,
        jkt: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        let now = self.now;
        let policy = self.history.current();
        let own = policy.limits(family.remember_me, client.session.as_ref());
        let deadlines = family::deadlines(policy, family, client.session.as_ref());
        let dies_at = deadlines.idle.min(deadlines.absolute);
        // SPEC 3: exp = min(now + access_token_ttl, idle deadline, absolute deadline).
        let exp = now.plus(own.access_token_ttl).min(dies_at);
        let access = AccessClaims {
            iss: self.issuer.to_owned(),
            sub: family.username.clone(),
            aud: self.issuer.to_owned(),
            client_id: client.id.clone(),
            exp: exp.as_secs(),
            iat: now.as_secs(),
            jti: new_jti(),
            scope: scope.to_owned(),
            sid: Some(family.sid.clone()),
            auth_time: Some(family.auth_time.as_secs()),
            fid: Some(family.id.clone()),
            act: None,
            permissions: None,
            cnf: jkt.map(|jkt| crate::token::claims::Confirmation { jkt: jkt.to_owned() }),
        };
        let mut access = access;
        // SPEC 8: permissions ride only with the admin scope, for a client allowed it.
        if scope.split(' ').any(|s| s == super::client_credentials::ADMIN_SCOPE)
            && client.scopes.contains(super::client_credentials::ADMIN_SCOPE)
            && let Some(user) = self.users.find(&family.username).await
            && !user.permissions.is_empty()
        {
            access.permissions = Some(user.permissions.iter().map(|p| p.as_str().to_owned()).collect());
        }
        let key = self.keys.active(now);
        let access_token = jwt::sign(key, TokenType::Access, &access).map_err(internal)?;
        // OIDC Core 15.1: RS256 (or the default) as the client registered.
        let id_key = self.keys.id_token_key(client.id_token_signed_response_alg, now);
        let id_token = if scope.split(' ').any(|s| s == "openid") {
            let id = IdClaims {
                iss: self.issuer.to_owned(),
                sub: family.username.clone(),
                aud: client.id.clone(),
                azp: client.id.clone(),
                exp: exp.as_secs(),
                iat: now.as_secs(),
                auth_time: family.auth_time.as_secs(),
                nonce,
                sid: family.sid.clone(),
                at_hash: jwt::at_hash(id_key.alg, &access_token),
            };
            Some(jwt::sign(id_key, TokenType::Id, &id).map_err(internal)?)
        } else {
            None
        };
        let refresh_token = if family.issues_refresh_tokens {
            let t = self.refresh_key.token(&family.id, &family.salt, family.generation);
            Some(t.ok_or_else(|| internal("a family id that is not a UUID"))?)
        } else {
            None
        };
        let has_refresh = refresh_token.is_some();
        Ok(TokenResponse {
            access_token,
            issued_token_type: None,
            token_type: if jkt.is_some() { "DPoP" } else { "Bearer" },
            expires_in: now.until(exp),
            scope: scope.to_owned(),
            refresh_token,
            refresh_expires_in: has_refresh.then(|| now.until(dies_at)),
            session_expires_in: has_refresh.then(|| now.until(deadlines.absolute)),
            id_token,
        })
    }
}
