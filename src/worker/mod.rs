//! The background loops (docs/architecture.md, "Floors"): each holds the
//! service's [`AppState`](crate::service::AppState) and runs until `serve`
//! aborts it. They sit above `service/` and below `http/`.
//!
//! - [`backchannel`]: OIDC back-channel logout delivery (the outbox).
//! - [`ssf_push`]: RFC 8935 push delivery of the revocation feed.
//! - [`replica`]: replica id, leases, following the cache epoch.
//! - [`sweeper`]: expired records and old history.
//! - [`keys`]: reloading the signing keys when they change.

pub mod backchannel;
pub mod keys;
pub mod replica;
pub mod ssf_push;
pub mod sweeper;
