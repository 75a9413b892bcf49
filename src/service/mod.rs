//! The service layer: the issuer's use cases, between `http/` (which
//! extracts, calls one function here and maps its result) and the domain
//! (`oauth/`, `session/`, `revocation`, `store/`). Each use case is one
//! function that takes the state, its inputs and `now`, and returns a domain
//! result or a [`ServiceError`]; nothing here knows axum. The background
//! workers (`backchannel`, `ssf::push`) depend on this module, not on `http`.
//! The administration use cases live beside it in `crate::admin`.

pub mod error;
pub mod state;
pub mod token;

pub use error::{BearerError, ServiceError};
pub use state::{AppState, StartError};

use crate::clock::UnixTime;
use crate::policy::ClientSessionOverride;
use crate::revocation::Revocation;
use crate::store::AnyStore;

impl AppState {
    /// The one place a [`Revocation`] is assembled: the store and clients of
    /// this issuer at `now`.
    pub fn revocation(&self, now: UnixTime) -> Revocation<'_, AnyStore> {
        Revocation { store: &self.store, clients: &self.clients, now }
    }

    /// A client's session override (SPEC 3), by client id: what the
    /// liveness checks of families and tokens take.
    pub fn client_override(&self, client_id: &str) -> Option<ClientSessionOverride> {
        self.clients.get(client_id).and_then(|c| c.session.clone())
    }
}
