//! Compact JWS signing (RFC 7515 7.1) of tenure's own tokens.
//!
//! Signing is on the hot path of every grant, so it uses ring directly: the
//! header is fixed per key and token type and the claims are serialized once.
//! The algorithm comes from the key record, never from input (RFC 8725 3.1).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::keys::{KeyError, KeySet, SigningKey};
use crate::clock::UnixTime;
use crate::config::SigningAlg;
use crate::duration::Secs;

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

/// Why a token was not accepted. The message is safe to show the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the token is not a signed JWT issued by this server")]
    Malformed,
    #[error("the token is signed with an unknown or retired key")]
    UnknownKey,
    #[error("the token's algorithm does not match its key")]
    WrongAlgorithm,
    #[error("the token's signature is not valid")]
    BadSignature,
    #[error("the token is not a {expected} token")]
    WrongType { expected: &'static str },
    #[error("the token was not issued by this server")]
    WrongIssuer,
    #[error("the token has expired")]
    Expired,
}

/// Verify a compact JWS issued by tenure (RFC 8725): the key is chosen by
/// `kid` among the published keys only (`jku`, `x5u`, `jwk` are ignored), the
/// algorithm must be that key's (no `none`, no HMAC), the `typ` must be that
/// of `kind`, `iss` must be `issuer` and `exp` must be in the future.
pub fn verify<C: DeserializeOwned>(
    token: &str,
    kind: TokenType,
    keys: &KeySet,
    retain: Secs,
    issuer: &str,
    now: UnixTime,
) -> Result<C, VerifyError> {
    let header = peek_header(token)?;
    let kid = header.get("kid").and_then(|v| v.as_str()).ok_or(VerifyError::UnknownKey)?;
    let key = keys.find(kid, now, retain).ok_or(VerifyError::UnknownKey)?;
    let alg = header.get("alg").and_then(|v| v.as_str()).ok_or(VerifyError::Malformed)?;
    if SigningAlg::parse(alg) != Some(key.alg) {
        return Err(VerifyError::WrongAlgorithm);
    }
    if header.get("typ").and_then(|v| v.as_str()) != Some(kind.typ()) {
        return Err(VerifyError::WrongType { expected: kind.typ() });
    }
    let verifier: &dyn josekit::jws::JwsVerifier = key.verifier.as_ref();
    let (payload, _) = josekit::jwt::decode_with_verifier(token, verifier).map_err(|_| VerifyError::BadSignature)?;
    let claims = serde_json::Value::Object(payload.claims_set().clone());
    if claims.get("iss").and_then(|v| v.as_str()) != Some(issuer) {
        return Err(VerifyError::WrongIssuer);
    }
    let exp = claims.get("exp").and_then(serde_json::Value::as_u64).ok_or(VerifyError::Malformed)?;
    if exp <= now.as_secs() {
        return Err(VerifyError::Expired);
    }
    serde_json::from_value(claims).map_err(|_| VerifyError::Malformed)
}

fn peek_header(token: &str) -> Result<serde_json::Map<String, serde_json::Value>, VerifyError> {
    let mut parts = token.split('.');
    let (Some(h), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(VerifyError::Malformed);
    };
    let bytes = B64.decode(h).map_err(|_| VerifyError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| VerifyError::Malformed)
}

/// OIDC Core 3.1.3.6: `at_hash` = base64url of the left half of the hash of
/// the access token, with the hash of the ID token's `alg` (SHA-256 for
/// ES256/RS256, SHA-512 for EdDSA with Ed25519).
pub fn at_hash(alg: SigningAlg, access_token: &str) -> String {
    let digest = match alg {
        SigningAlg::ES256 | SigningAlg::RS256 => ring::digest::digest(&ring::digest::SHA256, access_token.as_bytes()),
        SigningAlg::EdDSA => ring::digest::digest(&ring::digest::SHA512, access_token.as_bytes()),
    };
    let bytes = digest.as_ref();
    B64.encode(&bytes[..bytes.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::claims::AccessClaims;
    use crate::token::keys::KeyDir;

    const ISS: &str = "https://issuer.example";
    const T0: UnixTime = UnixTime(1_700_000_000);

    fn claims(exp: u64) -> AccessClaims {
        AccessClaims {
            iss: ISS.into(),
            sub: "svc".into(),
            aud: ISS.into(),
            client_id: "svc".into(),
            exp,
            iat: T0.as_secs(),
            jti: "j".into(),
            scope: String::new(),
            sid: None,
            auth_time: None,
            fid: None,
            act: None,
            permissions: None,
        }
    }

    fn keyset(alg: SigningAlg) -> (tempfile::TempDir, KeySet) {
        let dir = tempfile::tempdir().expect("tempdir");
        let kd = KeyDir::new(dir.path());
        kd.ensure_active(alg, T0).expect("generate");
        let ks = kd.load().expect("load");
        (dir, ks)
    }

    fn forge(header: &serde_json::Value, payload: &serde_json::Value, sig: &[u8]) -> String {
        format!("{}.{}.{}", B64.encode(header.to_string()), B64.encode(payload.to_string()), B64.encode(sig))
    }

    #[test]
    fn a_token_we_signed_verifies_for_every_algorithm() {
        for alg in [SigningAlg::ES256, SigningAlg::EdDSA, SigningAlg::RS256] {
            let (_d, ks) = keyset(alg);
            let t = sign(ks.active(), TokenType::Access, &claims(T0.as_secs() + 60)).expect("sign");
            let back: AccessClaims = verify(&t, TokenType::Access, &ks, Secs::hours(1), ISS, T0).expect("verifies");
            assert_eq!(back, claims(T0.as_secs() + 60));
        }
    }

    #[test]
    fn everything_else_is_refused() {
        let (_d, ks) = keyset(SigningAlg::ES256);
        let kid = ks.active().kid.clone();
        let good = sign(ks.active(), TokenType::Access, &claims(T0.as_secs() + 60)).expect("sign");
        let v = |t: &str, kind| verify::<AccessClaims>(t, kind, &ks, Secs::hours(1), ISS, T0);
        let payload = serde_json::to_value(claims(T0.as_secs() + 60)).expect("json");

        let none = forge(&serde_json::json!({"alg": "none", "kid": kid, "typ": "at+jwt"}), &payload, b"");
        assert_eq!(v(&none, TokenType::Access), Err(VerifyError::WrongAlgorithm));
        let hs = forge(&serde_json::json!({"alg": "HS256", "kid": kid, "typ": "at+jwt"}), &payload, b"xx");
        assert_eq!(v(&hs, TokenType::Access), Err(VerifyError::WrongAlgorithm), "no algorithm confusion");
        let other_kid = forge(&serde_json::json!({"alg": "ES256", "kid": "nope", "typ": "at+jwt"}), &payload, b"xx");
        assert_eq!(v(&other_kid, TokenType::Access), Err(VerifyError::UnknownKey));

        let mut parts: Vec<&str> = good.split('.').collect();
        let mut tampered_claims = claims(T0.as_secs() + 60);
        tampered_claims.sub = "root".into();
        let tampered_payload = B64.encode(serde_json::to_vec(&tampered_claims).expect("json"));
        parts[1] = &tampered_payload;
        assert_eq!(v(&parts.join("."), TokenType::Access), Err(VerifyError::BadSignature));

        assert_eq!(v(&good, TokenType::Id), Err(VerifyError::WrongType { expected: "JWT" }));
        assert_eq!(v("a.b", TokenType::Access), Err(VerifyError::Malformed));
        let expired = sign(ks.active(), TokenType::Access, &claims(T0.as_secs())).expect("sign");
        assert_eq!(v(&expired, TokenType::Access), Err(VerifyError::Expired));
        assert_eq!(
            verify::<AccessClaims>(&good, TokenType::Access, &ks, Secs::hours(1), "https://other", T0),
            Err(VerifyError::WrongIssuer)
        );
    }

    #[test]
    fn at_hash_is_the_left_half_of_the_digest() {
        // OIDC Core A.3 example: access token "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y" -> "77QmUPtjPfzWtF2AnpK9RQ" (RS256).
        assert_eq!(at_hash(SigningAlg::RS256, "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"), "77QmUPtjPfzWtF2AnpK9RQ");
        assert_eq!(at_hash(SigningAlg::EdDSA, "x").len(), 43);
    }
}
