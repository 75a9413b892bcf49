//! Tokens: claims (RFC 9068, OIDC), JWS signing, and the signing keys with
//! their JWKS.

pub mod alg;
pub mod claims;
pub mod jwt;
pub mod keys;
pub mod master_key;
pub mod verified;

pub use alg::SigningAlg;
