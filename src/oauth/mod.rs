//! OAuth 2.0 protocol rules, free of HTTP: clients and their
//! authentication, request parameters, client credentials, token minting,
//! DPoP, and errors with RFC codes. The grants that call the store live in
//! `service/` (code_grant, refresh_grant, exchange).

pub mod authorize;
pub mod client;
pub mod client_auth;
pub mod client_credentials;
pub mod client_spec;
pub mod console_client;
pub mod dpop;
pub mod error;
pub mod params;
pub mod throttle;
pub mod tokens;

pub use error::{ErrorCode, OAuthError};
