//! RFC 8693 token exchange (SPEC 5): a service trades a user's access token
//! (or its own client-credentials token) for a narrower one for a downstream
//! audience.
//!
//! - The subject token must be a live access token tenure issued, verified
//!   by the RFC 8725 rules (`alg` from our key, `kid` among published keys,
//!   `typ: at+jwt`, our `iss`, unexpired), and its family still alive.
//! - The audience (`audience` or `resource`) must be one of the requesting
//!   client's `token_exchange_audiences` (2.2.2 `invalid_target`); the scope
//!   may narrow, never widen (`invalid_scope`).
//! - The issued token keeps `sub`, `sid` and the family (`fid`), so revoking
//!   the subject's family, session or user kills it too; it carries `act`
//!   naming the requesting client, nesting any earlier `act` (4.1); and it
//!   never outlives the subject's session (idle and absolute deadlines) nor,
//!   without a session, the subject token itself. No refresh token.
//! - A DPoP-bound subject token (`cnf.jkt`, RFC 9449 6) is exchanged only
//!   with a DPoP proof of that same key, and the issued token keeps the
//!   binding: an exchange never turns a sender-constrained token into a
//!   bearer one, nor rebinds it to another key. Without a proof, or with
//!   another key's, `invalid_grant` (RFC 8693 2.2.2: the subject token is
//!   not valid for this request).

use crate::clock::UnixTime;
use crate::duration::Secs;
use crate::oauth::client::{Client, GrantType, ScopeSet};
use crate::oauth::error::{ErrorCode, OAuthError};
use crate::oauth::params::Params;
use crate::policy::PolicyHistory;
use crate::session::family;
use crate::store::Store;
use crate::token::claims::{AccessClaims, new_jti};
use crate::token::jwt::{self, TokenType};
use crate::token::keys::KeySet;

pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Why an exchange was refused for policy reasons (audited).
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub error: OAuthError,
    /// Audit the refusal (a policy decision, not a malformed request).
    pub audit: bool,
}

impl From<OAuthError> for Refusal {
    fn from(error: OAuthError) -> Self {
        Refusal { error, audit: false }
    }
}

fn policy(code: ErrorCode, d: String) -> Refusal {
    Refusal { error: OAuthError::new(code, d), audit: true }
}

pub struct Exchange<'a> {
    pub keys: &'a KeySet,
    /// The registered clients: a subject token whose client was deleted is
    /// dead, whatever its `exp`.
    pub clients: &'a crate::oauth::client_auth::ClientRegistry,
    pub retain: Secs,
    pub issuer: &'a str,
    pub history: &'a PolicyHistory,
    /// The group policies and the users, so the subject's session is
    /// judged as its user's groups tighten it (SPEC 14).
    pub groups: &'a crate::policy::Groups,
    pub users: &'a dyn crate::user::Directory,
    pub now: UnixTime,
}

impl Exchange<'_> {
    /// The claims of the exchanged token, or why not.
    pub async fn decide<S: Store>(
        &self,
        store: &S,
        client: &Client,
        subject_client_override: impl Fn(&str) -> Option<crate::policy::ClientSessionOverride>,
        params: &Params,
        proof_jkt: Option<&str>,
    ) -> Result<AccessClaims, Refusal> {
        if !client.allows_grant(GrantType::TokenExchange) || client.is_public() {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                format!("client {:?} is not allowed the token-exchange grant", client.id),
            )
            .into());
        }
        let subject_token = params.require("subject_token")?;
        let subject_type = params.require("subject_token_type")?;
        if subject_type != ACCESS_TOKEN_TYPE {
            return Err(OAuthError::invalid_request(format!(
                "subject_token_type {subject_type:?} is not supported; use {ACCESS_TOKEN_TYPE}"
            ))
            .into());
        }
        if let Some(requested) = params.get("requested_token_type")
            && requested != ACCESS_TOKEN_TYPE
        {
            return Err(OAuthError::invalid_request(format!(
                "requested_token_type {requested:?} is not supported; this server issues {ACCESS_TOKEN_TYPE}"
            ))
            .into());
        }
        if params.get("actor_token").is_some() {
            return Err(OAuthError::invalid_request(
                "actor_token is not supported: the actor is the authenticated client",
            )
            .into());
        }
        let audience = match (params.get("audience"), params.get("resource")) {
            (Some(a), Some(r)) if a != r => {
                return Err(
                    OAuthError::invalid_request("audience and resource name different targets; send one").into()
                );
            }
            (Some(a), _) | (None, Some(a)) => a,
            (None, None) => {
                return Err(
                    OAuthError::invalid_request("missing required parameter \"audience\" (or \"resource\")").into()
                );
            }
        };
        if !client.token_exchange_audiences.iter().any(|a| a == audience) {
            return Err(policy(
                ErrorCode::InvalidTarget,
                format!(
                    "client {:?} may not obtain tokens for audience {audience:?}; allowed: {}",
                    client.id,
                    client.token_exchange_audiences.join(", ")
                ),
            ));
        }
        let subject: AccessClaims = jwt::verify(
            subject_token,
            TokenType::Access,
            self.keys,
            self.retain,
            self.history.current().max_lifetime_ceiling,
            self.issuer,
            self.now,
        )
        .map_err(|e| OAuthError::new(ErrorCode::InvalidGrant, format!("subject_token: {e}")))?;
        if self.clients.get(&subject.client_id).is_none() {
            return Err(policy(
                ErrorCode::InvalidGrant,
                "subject_token: the client it was issued to no longer exists".to_owned(),
            ));
        }
        if let Some(cnf) = &subject.cnf {
            match proof_jkt {
                Some(jkt) if jkt == cnf.jkt => {}
                Some(_) => {
                    return Err(policy(
                        ErrorCode::InvalidGrant,
                        "subject_token is bound to another DPoP key than the proof's (cnf.jkt): sign the DPoP proof with the subject token's key".to_owned(),
                    ));
                }
                None => {
                    return Err(policy(
                        ErrorCode::InvalidGrant,
                        "subject_token is DPoP-bound (cnf.jkt): send a DPoP proof signed by its key; the exchanged token stays bound to that key".to_owned(),
                    ));
                }
            }
        }
        // The subject's family bounds the new token's life and kills it.
        let deadline = match &subject.fid {
            None => UnixTime(subject.exp),
            Some(fid) => {
                let internal = |e: crate::store::StoreError| {
                    Refusal::from(crate::service::error::oauth_store("token exchange", e))
                };
                let f = store.family(fid).await.map_err(internal)?;
                let session = match &f {
                    Some(f) => store.session(&f.sid).await.map_err(internal)?,
                    None => None,
                };
                let over = f.as_ref().and_then(|f| subject_client_override(&f.client_id));
                let history = match &f {
                    Some(f) => {
                        crate::oauth::tokens::history_for(self.history, self.groups, self.users, &f.username).await
                    }
                    None => std::borrow::Cow::Borrowed(self.history),
                };
                let live = f
                    .as_ref()
                    .is_some_and(|f| family::is_alive(&history, f, session.as_ref(), over.as_ref(), self.now));
                let Some(f) = f.filter(|_| live) else {
                    return Err(policy(
                        ErrorCode::InvalidGrant,
                        "subject_token: its session has ended or was revoked".to_owned(),
                    ));
                };
                let d = family::deadlines(history.current(), &f, over.as_ref());
                d.idle.min(d.absolute)
            }
        };
        let granted = ScopeSet::parse(&subject.scope).unwrap_or_default();
        let scope = match params.get("scope") {
            None => granted,
            Some(raw) => {
                let requested = ScopeSet::parse(raw).map_err(|bad| {
                    OAuthError::invalid_scope(format!("{bad:?} is not a valid scope token (RFC 6749 3.3)"))
                })?;
                let wider: Vec<String> = requested.not_in(&granted).map(ToString::to_string).collect();
                if !wider.is_empty() {
                    return Err(policy(
                        ErrorCode::InvalidScope,
                        format!("scope {} is wider than the subject token's ({granted})", wider.join(" ")),
                    ));
                }
                requested
            }
        };
        // RFC 8693 4.1: the requesting client acts; earlier actors nest.
        let mut act = serde_json::json!({ "sub": client.id });
        if let Some(prior) = subject.act.clone() {
            act["act"] = prior;
        }
        let ttl = self.history.current().limits(false, client.session.as_ref()).access_token_ttl;
        // Never past the subject session's idle or absolute deadline (or,
        // without a session, the subject token's own exp).
        let exp = self.now.plus(ttl).min(deadline);
        Ok(AccessClaims {
            iss: self.issuer.to_owned(),
            sub: subject.sub,
            aud: audience.to_owned(),
            client_id: client.id.clone(),
            exp: exp.as_secs(),
            iat: self.now.as_secs(),
            jti: new_jti(),
            scope: scope.to_string(),
            sid: subject.sid,
            auth_time: subject.auth_time,
            fid: subject.fid,
            act: Some(act),
            permissions: None,
            cnf: None,
        })
    }
}
