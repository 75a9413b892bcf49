//! OAuth 2.0 protocol rules, free of HTTP: clients and their
//! authentication, request parameters, grants, and errors with RFC codes.

pub mod authorize;
pub mod client;
pub mod client_auth;
pub mod client_credentials;
pub mod client_spec;
pub mod code_grant;
pub mod console_client;
pub mod dpop;
pub mod error;
pub mod exchange;
pub mod params;
pub mod refresh_grant;
pub mod throttle;
pub mod tokens;

pub use error::{ErrorCode, OAuthError};
