//! Compact JWS signing (RFC 7515 7.1) of tenure's own tokens.
//!
//! Signing is on the hot path of every grant, so it uses ring directly: the
//! header is fixed per key and token type and the claims are serialized once.
//! The algorithm comes from the key record, never from input (RFC 8725 3.1).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Serialize;

use super::keys::{KeyError, SigningKey};

/// The `typ` header of each kind of token tenure signs (RFC 8725 3.11).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenType {
    /// RFC 9068 2.1.
    Access,
    /// OIDC Core 2.
    Id,
    /// OIDC Back-Channel Logout 2.4.
    Logout,
}

impl TokenType {
    pub fn typ(self) -> &'static str {
        match self {
            TokenType::Access => "at+jwt",
            TokenType::Id => "JWT",
            TokenType::Logout => "logout+jwt",
        }
    }
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'a str,
    kid: &'a str,
    typ: &'a str,
}

/// Sign `claims` as a compact JWS with `key`.
pub fn sign<C: Serialize>(key: &SigningKey, kind: TokenType, claims: &C) -> Result<String, KeyError> {
    let header = Header { alg: key.alg.as_str(), kid: &key.kid, typ: kind.typ() };
    let header_json = serde_json::to_vec(&header).map_err(|_| KeyError::Sign)?;
    let claims_json = serde_json::to_vec(claims).map_err(|_| KeyError::Sign)?;
    let mut out = String::with_capacity((header_json.len() + claims_json.len()) * 4 / 3 + 140);
    B64.encode_string(&header_json, &mut out);
    out.push('.');
    B64.encode_string(&claims_json, &mut out);
    let signature = key.sign(out.as_bytes())?;
    out.push('.');
    B64.encode_string(&signature, &mut out);
    Ok(out)
}
