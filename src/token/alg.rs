//! The JWS algorithm tenure signs with (RFC 7518 section 3.1).

use std::fmt;

/// The JWS algorithm tenure signs with (SPEC 5, `signing_alg`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SigningAlg {
    ES256,
    EdDSA,
    RS256,
}

impl SigningAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::ES256 => "ES256",
            SigningAlg::EdDSA => "EdDSA",
            SigningAlg::RS256 => "RS256",
        }
    }
    pub fn parse(s: &str) -> Option<SigningAlg> {
        [SigningAlg::ES256, SigningAlg::EdDSA, SigningAlg::RS256].into_iter().find(|a| a.as_str() == s)
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
