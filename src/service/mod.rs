//! The service layer: the issuer's use cases, between `http/` (which
//! extracts, calls one function here and maps its result) and the domain
//! (`oauth/`, `session/`, `store/`). Each use case is one
//! function that takes the state, its inputs and `now`, and returns a domain
//! result or a [`ServiceError`]; nothing here knows axum. The background
//! workers (`backchannel`, `ssf::push`) depend on this module, not on `http`.
//! The administration use cases (users, clients, keys, sessions, settings,
//! explain, audit, setup) take an [`Actor`] (`actor.rs`).

pub mod account;
pub mod actor;
pub mod audit;
pub mod bearer;
pub mod clients;
pub mod code_grant;
pub mod device;
pub mod dpop;
pub mod error;
pub mod exchange;
pub mod explain;
pub mod failed_sign_ins;
pub mod feed;
pub mod fresh;
pub mod groups;
pub mod introspect;
pub mod keys;
pub mod logout;
pub mod lookup;
pub mod refresh_grant;
pub mod revocation;
pub mod revoke;
pub mod sessions;
pub mod settings;
pub mod setup;
pub mod signin;
pub mod state;
pub mod token;
pub mod userinfo;
pub mod users;

pub use actor::Actor;
pub use error::{BearerError, ServiceError};
pub use state::{AppState, StartError};

use std::sync::Arc;

use crate::clock::UnixTime;
use crate::oauth::OAuthError;
use crate::oauth::client::Client;
use crate::oauth::client_auth::PresentedClient;
use crate::oauth::params::Params;
use crate::policy::ClientSessionOverride;
use crate::service::lookup::Lookup;
use crate::store::AnyStore;
use crate::token::keys::KeySet;
use revocation::Revocation;

/// A request of a client to an OAuth endpoint: its form and credentials.
pub struct ClientRequest<'a> {
    /// The form parameters.
    pub params: &'a Params,
    /// The `Authorization` header (client_secret_basic).
    pub authorization: Option<&'a str>,
    /// The client's address, for the client-authentication throttle.
    pub remote: &'a str,
}

impl ClientRequest<'_> {
    /// The client these credentials prove (RFC 6749 2.3), or `invalid_client`.
    pub async fn authenticate(&self, state: &AppState, now: UnixTime) -> Result<Arc<Client>, OAuthError> {
        let presented = PresentedClient::from_request(self.authorization, self.params)?;
        state.clients.authenticate(presented, self.remote, now).await
    }
}

impl AppState {
    /// The one place a [`Revocation`] is assembled: the store and clients of
    /// this issuer at `now`.
    pub fn revocation(&self, now: UnixTime) -> Revocation<'_, AnyStore> {
        Revocation { store: &self.store, clients: &self.clients, now }
    }

    /// What finds the token a client presents to `/revoke` or `/introspect`.
    pub fn lookup<'a>(&'a self, keys: &'a KeySet, now: UnixTime) -> Lookup<'a> {
        Lookup {
            keys,
            verified: &self.verified,
            retain: self.key_retention(),
            max_lifetime: self.max_token_lifetime(),
            issuer: &self.issuer,
            refresh_key: &self.refresh_key,
            now,
        }
    }

    /// Whether the client an access token was issued to still exists: a
    /// deleted client's tokens are dead at once (bearer use, userinfo,
    /// introspection), however long their `exp`.
    pub fn holder_exists(&self, claims: &crate::token::claims::AccessClaims) -> bool {
        self.clients.get(&claims.client_id).is_some()
    }

    /// A client's session override (SPEC 3), by client id: what the
    /// liveness checks of families and tokens take.
    pub fn client_override(&self, client_id: &str) -> Option<ClientSessionOverride> {
        self.clients.get(client_id).and_then(|c| c.session.clone())
    }
}
