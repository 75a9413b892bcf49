//! Compact JWS signing (RFC 7515 7.1) of tenure's own tokens.
//!
//! Signing is on the hot path of every grant, so it uses ring directly: the
//! header is fixed per key and token type and the claims are serialized once.
//! The algorithm comes from the key record, never from input (RFC 8725 3.1).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::SigningAlg;
use super::keys::{KeyError, KeySet, SigningKey};
use crate::clock::UnixTime;
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
    /// A Security Event Token (RFC 8417 2.3) of the revocation feed.
    SecEvent,
}

impl TokenType {
    pub fn typ(self) -> &'static str {
        match self {
            TokenType::Access => "at+jwt",
            TokenType::Id => "JWT",
            TokenType::Logout => "logout+jwt",
            TokenType::SecEvent => "secevent+jwt",
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
    #[error("the token claims a lifetime longer than this server ever issues")]
    TooLong,
}

/// Verify a compact JWS issued by tenure (RFC 8725): the key is chosen by
/// `kid` among the published keys only (`jku`, `x5u`, `jwk` are ignored), the
/// algorithm must be that key's (no `none`, no HMAC), the `typ` must be that
/// of `kind`, an ES256 signature must be canonical (low s), `iss` must be
/// `issuer`, `exp - iat` at most `max_lifetime` and `exp` in the future.
pub fn verify<C: DeserializeOwned>(
    token: &str,
    kind: TokenType,
    keys: &KeySet,
    retain: Secs,
    max_lifetime: Secs,
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
    if key.alg == SigningAlg::ES256 {
        // OpenSSL accepts (r, n - s) as well as (r, s); we sign low-S only.
        let signature = token.rsplit('.').next().ok_or(VerifyError::Malformed)?;
        let bytes = B64.decode(signature).map_err(|_| VerifyError::BadSignature)?;
        if !super::keys::es256_is_low_s(&bytes) {
            return Err(VerifyError::BadSignature);
        }
    }
    let verifier: &dyn josekit::jws::JwsVerifier = key.verifier.as_ref();
    let (payload, _) = josekit::jwt::decode_with_verifier(token, verifier).map_err(|_| VerifyError::BadSignature)?;
    let claims = serde_json::Value::Object(payload.claims_set().clone());
    if claims.get("iss").and_then(|v| v.as_str()) != Some(issuer) {
        return Err(VerifyError::WrongIssuer);
    }
    let exp = claims.get("exp").and_then(serde_json::Value::as_u64).ok_or(VerifyError::Malformed)?;
    let iat = claims.get("iat").and_then(serde_json::Value::as_u64).ok_or(VerifyError::Malformed)?;
    if !within_lifetime(iat, exp, max_lifetime) {
        return Err(VerifyError::TooLong);
    }
    if exp <= now.as_secs() {
        return Err(VerifyError::Expired);
    }
    serde_json::from_value(claims).map_err(|_| VerifyError::Malformed)
}

/// Whether a token issued at `iat` and expiring at `exp` claims a lifetime
/// of at most `max_lifetime`.
pub fn within_lifetime(iat: u64, exp: u64, max_lifetime: Secs) -> bool {
    exp.saturating_sub(iat) <= max_lifetime.as_secs()
}

/// The `kid` of a token's header, unverified.
pub fn header_kid(token: &str) -> Option<String> {
    peek_header(token).ok()?.get("kid")?.as_str().map(str::to_owned)
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
    /// The lifetime bound: the default policy ceiling.
    const MAX: Secs = Secs::days(30);

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
            cnf: None,
        }
    }

    fn keyset(alg: SigningAlg) -> (tempfile::TempDir, KeySet) {
        let dir = tempfile::tempdir().expect("tempdir");
        let kd = KeyDir::new(dir.path());
        kd.ensure_active(alg, T0, Secs::ZERO).expect("generate");
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
            let t = sign(ks.active(T0), TokenType::Access, &claims(T0.as_secs() + 60)).expect("sign");
            let back: AccessClaims =
                verify(&t, TokenType::Access, &ks, Secs::hours(1), MAX, ISS, T0).expect("verifies");
            assert_eq!(back, claims(T0.as_secs() + 60));
        }
    }

    #[test]
    fn everything_else_is_refused() {
        let (_d, ks) = keyset(SigningAlg::ES256);
        let kid = ks.active(T0).kid.clone();
        let good = sign(ks.active(T0), TokenType::Access, &claims(T0.as_secs() + 60)).expect("sign");
        let v = |t: &str, kind| verify::<AccessClaims>(t, kind, &ks, Secs::hours(1), MAX, ISS, T0);
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
        let expired = sign(ks.active(T0), TokenType::Access, &claims(T0.as_secs())).expect("sign");
        assert_eq!(v(&expired, TokenType::Access), Err(VerifyError::Expired));
        assert_eq!(
            verify::<AccessClaims>(&good, TokenType::Access, &ks, Secs::hours(1), MAX, "https://other", T0),
            Err(VerifyError::WrongIssuer)
        );
    }

    /// The same signature with s replaced by n - s: as valid to OpenSSL.
    fn high_s_variant(token: &str) -> String {
        let (input, sig) = token.rsplit_once('.').expect("three parts");
        let mut sig = B64.decode(sig).expect("b64");
        let n: [u8; 32] = [
            0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6,
            0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
        ];
        let mut borrow = 0u16;
        for j in (0..32).rev() {
            let (nj, s) = (u16::from(n[j]), u16::from(sig[32 + j]) + borrow);
            let (d, b) = if nj >= s { (nj - s, 0) } else { (nj + 256 - s, 1) };
            sig[32 + j] = d as u8;
            borrow = b;
        }
        format!("{input}.{}", B64.encode(sig))
    }

    #[test]
    fn a_high_s_variant_of_a_valid_token_is_refused() {
        let (_d, ks) = keyset(SigningAlg::ES256);
        let good = sign(ks.active(T0), TokenType::Access, &claims(T0.as_secs() + 60)).expect("sign");
        let high = high_s_variant(&good);
        // The variant is a valid ECDSA signature (OpenSSL alone accepts it) ...
        let verifier: &dyn josekit::jws::JwsVerifier = ks.active(T0).verifier.as_ref();
        assert!(josekit::jwt::decode_with_verifier(&high, verifier).is_ok(), "(r, n - s) verifies mathematically");
        // ... and tenure refuses it.
        assert_eq!(
            verify::<AccessClaims>(&high, TokenType::Access, &ks, Secs::hours(1), MAX, ISS, T0),
            Err(VerifyError::BadSignature)
        );
        assert!(verify::<AccessClaims>(&good, TokenType::Access, &ks, Secs::hours(1), MAX, ISS, T0).is_ok());
    }

    #[test]
    fn two_hundred_fresh_es256_tokens_are_low_s_and_verify_with_jsonwebtoken() {
        let (_d, ks) = keyset(SigningAlg::ES256);
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(ks.active(T0).jwk.clone()).expect("jwk");
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("decoding key");
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.set_audience(&[ISS]);
        validation.validate_exp = false;
        for i in 0..200 {
            let token = sign(ks.active(T0), TokenType::Access, &claims(T0.as_secs() + 60 + i)).expect("sign");
            let sig = B64.decode(token.rsplit('.').next().expect("sig")).expect("b64");
            assert!(crate::token::keys::es256_is_low_s(&sig), "token {i} is high-S");
            jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).expect("jsonwebtoken accepts it");
        }
    }

    #[test]
    fn a_token_claiming_a_lifetime_beyond_the_ceiling_is_refused() {
        let (_d, ks) = keyset(SigningAlg::ES256);
        let at_the_bound = sign(ks.active(T0), TokenType::Access, &claims(T0.as_secs() + MAX.as_secs())).expect("sign");
        assert!(verify::<AccessClaims>(&at_the_bound, TokenType::Access, &ks, Secs::hours(1), MAX, ISS, T0).is_ok());
        let beyond = sign(ks.active(T0), TokenType::Access, &claims(T0.as_secs() + MAX.as_secs() + 1)).expect("sign");
        assert_eq!(
            verify::<AccessClaims>(&beyond, TokenType::Access, &ks, Secs::hours(1), MAX, ISS, T0),
            Err(VerifyError::TooLong)
        );
    }

    #[test]
    fn an_rs256_id_token_from_the_companion_verifies_with_jsonwebtoken() {
        let (_d, ks) = keyset(SigningAlg::ES256);
        let key = ks.id_token_key(Some(SigningAlg::RS256), T0);
        assert_eq!(key.alg, SigningAlg::RS256);
        let token = sign(key, TokenType::Id, &claims(T0.as_secs() + 60)).expect("sign");
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.jwk.clone()).expect("jwk");
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_audience(&[ISS]);
        validation.validate_exp = false;
        jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("key"),
            &validation,
        )
        .expect("valid");
        assert!(verify::<AccessClaims>(&token, TokenType::Id, &ks, Secs::hours(1), MAX, ISS, T0).is_ok());
    }

    #[test]
    fn at_hash_is_the_left_half_of_the_digest() {
        // OIDC Core A.3 example: access token "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y" -> "77QmUPtjPfzWtF2AnpK9RQ" (RS256).
        assert_eq!(at_hash(SigningAlg::RS256, "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"), "77QmUPtjPfzWtF2AnpK9RQ");
        assert_eq!(at_hash(SigningAlg::EdDSA, "x").len(), 43);
    }
}
