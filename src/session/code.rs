//! Authorization codes (RFC 6749 4.1.2) and PKCE (RFC 7636, S256 only).
//!
//! A code is 256 random bits, valid for [`CODE_TTL`], single use, bound to
//! the client, the redirect URI and the PKCE challenge. The store keys it by
//! its SHA-256 and keeps the record after redemption until [`CODE_RECORD_TTL`]
//! so a replay can be recognised and the family it created revoked.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::clock::UnixTime;
use crate::duration::Secs;

/// How long a code may be exchanged.
pub const CODE_TTL: Secs = Secs::new(60);
/// How long its record is kept for replay detection (RFC 9700 4.5 / OIDC
/// conformance `oidcc-codereuse-30seconds`).
pub const CODE_RECORD_TTL: Secs = Secs::minutes(10);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthCode {
    pub client_id: String,
    pub redirect_uri: String,
    /// Whether the authorization request named `redirect_uri` (then the
    /// token request must repeat it, RFC 6749 4.1.3).
    #[serde(default)]
    pub redirect_uri_given: bool,
    pub scope: String,
    pub nonce: Option<String>,
    /// S256 challenge, base64url.
    pub code_challenge: Option<String>,
    pub sid: String,
    pub username: String,
    pub auth_time: UnixTime,
    pub remember_me: bool,
    pub issued_at: UnixTime,
    /// The family created by the first redemption.
    pub redeemed_family: Option<String>,
    /// RFC 9449 10: the DPoP key thumbprint the authorization request named;
    /// the code is then redeemed only with a proof of that key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
}

impl AuthCode {
    pub fn expires_at(&self) -> UnixTime {
        self.issued_at.plus(CODE_TTL)
    }
}

/// A fresh code value and the key it is stored under.
pub fn new_code() -> Result<(String, Vec<u8>), ring::error::Unspecified> {
    let mut raw = [0u8; 32];
    SystemRandom::new().fill(&mut raw)?;
    let code = B64.encode(raw);
    let key = storage_key(&code);
    Ok((code, key))
}

/// The store key of a code: its SHA-256.
pub fn storage_key(code: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, code.as_bytes()).as_ref().to_vec()
}

/// RFC 7636 4.1: 43 to 128 characters of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
pub fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// RFC 7636 4.2: an S256 challenge is base64url(SHA-256) without padding: 43 characters.
pub fn valid_challenge(c: &str) -> bool {
    c.len() == 43 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// RFC 7636 4.6: `BASE64URL(SHA256(verifier)) == challenge`, in constant time.
pub fn verifier_matches(verifier: &str, challenge: &str) -> bool {
    let computed = B64.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()));
    bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_example() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(valid_verifier(verifier));
        assert!(valid_challenge(challenge));
        assert!(verifier_matches(verifier, challenge));
        assert!(!verifier_matches("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK", challenge));
        assert!(!valid_verifier("short"));
        assert!(!valid_verifier(&"a".repeat(129)));
        assert!(!valid_verifier(&format!("{}+", "a".repeat(43))));
        assert!(!valid_challenge("plain-challenge"));
    }

    #[test]
    fn codes_are_random_and_keyed_by_their_hash() {
        let (a, ka) = new_code().expect("rng");
        let (b, _) = new_code().expect("rng");
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(ka, storage_key(&a));
    }
}
