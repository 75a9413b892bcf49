//! DPoP (RFC 9449): proofs of possession of a client-held key, the
//! RFC 7638 thumbprint that binds tokens to it, stateless server nonces, and
//! the key under which a proof's `jti` is remembered against replay.
//!
//! - A proof is a JWT with `typ: dpop+jwt`, an asymmetric `alg` (ES256,
//!   EdDSA, RS256, PS256) and the public key in its `jwk` header (never a
//!   private member). Its claims name the request: `htm` (method), `htu`
//!   (URI, compared without query and fragment, 4.3), `iat` (within
//!   [`IAT_PAST`] before and [`IAT_FUTURE`] after now), a unique `jti`, the
//!   server's `nonce` when nonces are required, and `ath` (the SHA-256 of
//!   the access token) when it goes with one (7.1).
//! - Nonces are an HMAC over the current time window under a key derived
//!   from the master key: valid for the current and the previous window at
//!   every replica, without any shared state.
//! - Replay (11.1): the store remembers the `jti`s (per key) accepted, for
//!   as long as their `iat` is acceptable ([`replay_key`], [`replay_until`]),
//!   so a proof accepted at one replica is refused at every other (SPEC 12);
//!   `service::dpop` does it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::{digest, hmac};
use serde_json::{Map, Value};

use crate::clock::UnixTime;

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(subtle::ConstantTimeEq::ct_eq(a, b))
}

/// The algorithms a proof may be signed with (`dpop_signing_alg_values_supported`).
pub const ALGS: [&str; 4] = ["ES256", "EdDSA", "RS256", "PS256"];
/// How old a proof's `iat` may be, in seconds.
pub const IAT_PAST: u64 = 60;
/// How far ahead of our clock a proof's `iat` may be, in seconds.
pub const IAT_FUTURE: u64 = 5;
/// The length of a nonce window, in seconds: a nonce is accepted during its
/// window and the next one.
pub const NONCE_WINDOW: u64 = 60;
/// The longest proof accepted, in bytes (an RSA-4096 key fits easily).
pub const MAX_PROOF_LEN: usize = 8 * 1024;

/// Why a proof was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DpopError {
    /// `invalid_dpop_proof`, naming the problem.
    Invalid(String),
    /// `use_dpop_nonce`: the proof lacks the server's current nonce.
    UseNonce,
}

fn invalid(m: impl Into<String>) -> DpopError {
    DpopError::Invalid(m.into())
}

/// What a proof must match.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    /// The request method, e.g. `POST`.
    pub htm: &'a str,
    /// The request URI as the client sees it (the issuer's URL of the endpoint).
    pub htu: &'a str,
    /// The access token the proof goes with (resource requests: `ath`).
    pub access_token: Option<&'a str>,
}

/// A proof that passed every check except replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proof {
    /// RFC 7638 SHA-256 thumbprint of the proof's key (`cnf.jkt`).
    pub jkt: String,
    pub jti: String,
    pub iat: u64,
}

/// base64url(SHA-256(`token`)): the `ath` of a proof sent with `token`.
pub fn ath(token: &str) -> String {
    B64.encode(digest::digest(&digest::SHA256, token.as_bytes()))
}

/// The RFC 7638 thumbprint of a public JWK (the required members in
/// lexicographic order, no whitespace, SHA-256, base64url).
pub fn thumbprint(jwk: &Map<String, Value>) -> Result<String, DpopError> {
    let member = |name: &str| -> Result<&str, DpopError> {
        jwk.get(name)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| invalid(format!("the jwk header lacks the string member {name:?}")))
    };
    let kty = member("kty")?;
    let canonical = match kty {
        "EC" => serde_json::json!({"crv": member("crv")?, "kty": kty, "x": member("x")?, "y": member("y")?}),
        "OKP" => serde_json::json!({"crv": member("crv")?, "kty": kty, "x": member("x")?}),
        "RSA" => serde_json::json!({"e": member("e")?, "kty": kty, "n": member("n")?}),
        other => return Err(invalid(format!("jwk kty {other:?} is not supported; use EC, OKP or RSA"))),
    };
    // serde_json's map is ordered by key, so this is the canonical form.
    let text = canonical.to_string();
    Ok(B64.encode(digest::digest(&digest::SHA256, text.as_bytes())))
}

/// A URI without query and fragment, normalised (RFC 3986 6.2.2, 6.2.3:
/// case of scheme and host, default port, dot segments, percent-encoding).
fn normalised_htu(uri: &str) -> Option<String> {
    let mut url = url::Url::parse(uri).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    url.set_query(None);
    url.set_fragment(None);
    Some(url.to_string())
}

/// Verify the ES256 signature of a compact JWS against a P-256 public JWK
/// with ring.
fn verify_es256(proof: &str, jwk: &Map<String, Value>) -> Result<(), DpopError> {
    let bad_key = || invalid("the jwk of the DPoP proof is not a valid ES256 public key");
    if jwk.get("kty").and_then(Value::as_str) != Some("EC") || jwk.get("crv").and_then(Value::as_str) != Some("P-256") {
        return Err(bad_key());
    }
    let coordinate = |name: &str| -> Result<Vec<u8>, DpopError> {
        let bytes = jwk.get(name).and_then(Value::as_str).and_then(|s| B64.decode(s).ok()).ok_or_else(bad_key)?;
        if bytes.len() == 32 { Ok(bytes) } else { Err(bad_key()) }
    };
    let mut point = Vec::with_capacity(65);
    point.push(0x04);
    point.extend(coordinate("x")?);
    point.extend(coordinate("y")?);
    let (signing_input, signature_b64) = proof.rsplit_once('.').ok_or_else(bad_key)?;
    let signature = B64.decode(signature_b64).map_err(|_| invalid("the DPoP proof's signature is not base64url"))?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &point)
        .verify(signing_input.as_bytes(), &signature)
        .map_err(|_| invalid("the DPoP proof's signature does not verify with its jwk"))
}

/// The only RSA public exponent accepted (65537, `AQAB`): a client chooses
/// its key, and so the cost of verifying its proofs.
pub const RSA_EXPONENT: [u8; 3] = [1, 0, 1];
/// The smallest and largest RSA modulus accepted, in bits.
pub const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=4096;

/// The cheap rules on the proof's key, before anything is verified with it:
/// the key type of the `alg`, and for RSA the exponent 65537 and a 2048- to
/// 4096-bit modulus (a client must not choose the server's cost).
fn check_key(alg: &str, jwk: &Map<String, Value>) -> Result<(), DpopError> {
    let kty = jwk.get("kty").and_then(Value::as_str).unwrap_or("");
    let wanted = match alg {
        "ES256" => "EC",
        "EdDSA" => "OKP",
        _ => "RSA",
    };
    if kty != wanted {
        return Err(invalid(format!("a DPoP proof signed with {alg} needs a jwk of kty {wanted:?}")));
    }
    if kty != "RSA" {
        return Ok(());
    }
    let decoded = |name: &str| -> Result<Vec<u8>, DpopError> {
        jwk.get(name)
            .and_then(Value::as_str)
            .and_then(|v| B64.decode(v).ok())
            .ok_or_else(|| invalid(format!("the jwk's {name:?} is not base64url")))
    };
    if decoded("e")? != RSA_EXPONENT {
        return Err(invalid("the RSA key of a DPoP proof must have the public exponent 65537 (e = \"AQAB\")"));
    }
    let n = decoded("n")?;
    let bits = match n.iter().position(|b| *b != 0) {
        // Minimal encoding (RFC 7518 6.3.1.1): no leading zero octet.
        Some(0) => n.len() * 8 - n[0].leading_zeros() as usize,
        _ => 0,
    };
    if !RSA_BITS.contains(&bits) {
        return Err(invalid(format!(
            "the RSA key of a DPoP proof must have a {}- to {}-bit modulus (minimally encoded); this one has {bits} bits",
            RSA_BITS.start(),
            RSA_BITS.end(),
        )));
    }
    Ok(())
}

/// Private members of a JWK (RFC 7517, 7518 6.2.2, 6.3.2, 6.4; RFC 8037).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Check `proof` (header, key, claims, then signature) against `expected`
/// at `now`. `nonce` is the check of the `nonce` claim when nonces are
/// required.
///
/// Everything cheap comes first: the header, the key's shape (for RSA its
/// exponent and size, [`RSA_EXPONENT`], [`RSA_BITS`]), then the claims read
/// from the still unverified payload (`jti`, `htm`, `htu`, `iat`, `ath`,
/// `nonce`); only a proof that would be accepted pays for the signature.
pub fn verify(
    proof: &str,
    expected: &Expected<'_>,
    nonce: Option<&dyn Fn(&str) -> bool>,
    now: UnixTime,
) -> Result<Proof, DpopError> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(invalid(format!("the DPoP proof exceeds {MAX_PROOF_LEN} bytes")));
    }
    let mut parts = proof.split('.');
    let (Some(header_b64), Some(payload_b64), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("the DPoP header must hold one JWT in compact form (three base64url parts)"));
    };
    let header: Map<String, Value> = B64
        .decode(header_b64)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| invalid("the DPoP proof header is not base64url-encoded JSON"))?;
    if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(invalid("the DPoP proof must have typ \"dpop+jwt\""));
    }
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if !ALGS.contains(&alg) {
        return Err(invalid(format!(
            "DPoP proof alg {:?} is not accepted; use one of {} (never none or a symmetric alg)",
            alg.chars().take(20).collect::<String>(),
            ALGS.join(", ")
        )));
    }
    let Some(Value::Object(jwk_map)) = header.get("jwk") else {
        return Err(invalid("the DPoP proof header must carry the public key as a jwk object"));
    };
    if let Some(private) = PRIVATE_MEMBERS.iter().find(|m| jwk_map.contains_key(**m)) {
        return Err(invalid(format!(
            "the jwk of the DPoP proof has the private member {private:?}: send only the public key"
        )));
    }
    let jkt = thumbprint(jwk_map)?;
    check_key(alg, jwk_map)?;
    // Not yet verified: read only to refuse a proof for another request
    // before its signature is paid for.
    let payload = B64.decode(payload_b64).map_err(|_| invalid("the DPoP proof's payload is not base64url"))?;
    let claims: Map<String, Value> =
        serde_json::from_slice(&payload).map_err(|_| invalid("the DPoP proof's payload is not a JSON object"))?;
    let string = |name: &str| -> Result<&str, DpopError> {
        claims
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("the DPoP proof lacks the string claim {name:?}")))
    };
    let jti = string("jti")?;
    if jti.is_empty() || jti.len() > 256 {
        return Err(invalid("the DPoP proof's jti must be 1 to 256 characters"));
    }
    let htm = string("htm")?;
    if htm != expected.htm {
        return Err(invalid(format!(
            "the DPoP proof's htm {:?} does not match the request method {}",
            htm.chars().take(20).collect::<String>(),
            expected.htm
        )));
    }
    let htu = string("htu")?;
    let same_uri = match (normalised_htu(htu), normalised_htu(expected.htu)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    };
    if !same_uri {
        return Err(invalid(format!(
            "the DPoP proof's htu {:?} does not match the request URI {}",
            htu.chars().take(200).collect::<String>(),
            expected.htu
        )));
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_u64)
        .ok_or_else(|| invalid("the DPoP proof lacks the numeric claim \"iat\""))?;
    let now_s = now.as_secs();
    if iat + IAT_PAST < now_s {
        return Err(invalid(format!("the DPoP proof is stale: its iat is more than {IAT_PAST} s old")));
    }
    if iat > now_s + IAT_FUTURE {
        return Err(invalid(format!("the DPoP proof's iat is more than {IAT_FUTURE} s in the future")));
    }
    match (expected.access_token, claims.get("ath")) {
        (Some(token), Some(Value::String(given))) => {
            if !ct_eq(given.as_bytes(), ath(token).as_bytes()) {
                return Err(invalid("the DPoP proof's ath is not the SHA-256 of the access token"));
            }
        }
        (Some(_), _) => return Err(invalid("the DPoP proof lacks the claim \"ath\" (the access token's hash)")),
        (None, _) => {}
    }
    if let Some(valid_nonce) = nonce {
        match claims.get("nonce").and_then(Value::as_str) {
            Some(n) if valid_nonce(n) => {}
            _ => return Err(DpopError::UseNonce),
        }
    }
    // Last, the signature (ES256 is the common case, on the refresh hot
    // path: ring verifies straight from the point, without building an
    // OpenSSL key per request).
    if alg == "ES256" {
        verify_es256(proof, jwk_map)?;
    } else {
        let jwk = josekit::jwk::Jwk::from_map(jwk_map.clone())
            .map_err(|_| invalid("the jwk of the DPoP proof is not a valid JSON Web Key"))?;
        let bad_key = |_| invalid(format!("the jwk of the DPoP proof is not a valid {alg} public key"));
        let verifier: Box<dyn josekit::jws::JwsVerifier> = match alg {
            "EdDSA" => Box::new(josekit::jws::EdDSA.verifier_from_jwk(&jwk).map_err(bad_key)?),
            "RS256" => Box::new(josekit::jws::RS256.verifier_from_jwk(&jwk).map_err(bad_key)?),
            _ => Box::new(josekit::jws::PS256.verifier_from_jwk(&jwk).map_err(bad_key)?),
        };
        josekit::jws::deserialize_compact(proof, verifier.as_ref())
            .map_err(|_| invalid("the DPoP proof's signature does not verify with its jwk"))?;
    }
    Ok(Proof { jkt, jti: jti.to_owned(), iat })
}

/// Stateless nonces: HMAC-SHA256 over the window number under a key derived
/// from the master key, so every replica issues and accepts the same ones.
pub struct NonceKey(hmac::Key);

impl std::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NonceKey(<redacted>)")
    }
}

impl NonceKey {
    pub fn new(key: hmac::Key) -> NonceKey {
        NonceKey(key)
    }

    fn for_window(&self, window: u64) -> String {
        B64.encode(hmac::sign(&self.0, &window.to_be_bytes()))
    }

    /// The nonce to hand out at `now`.
    pub fn current(&self, now: UnixTime) -> String {
        self.for_window(now.as_secs() / NONCE_WINDOW)
    }

    /// Whether `nonce` belongs to the current or the previous window.
    pub fn is_valid(&self, nonce: &str, now: UnixTime) -> bool {
        let window = now.as_secs() / NONCE_WINDOW;
        let current = ct_eq(nonce.as_bytes(), self.for_window(window).as_bytes());
        let previous = window > 0 && ct_eq(nonce.as_bytes(), self.for_window(window - 1).as_bytes());
        current | previous
    }
}

/// The key under which `proof` is remembered against replay: a 128-bit
/// digest of (key thumbprint, `jti`), so a record takes the same room
/// whatever the client sends, and the store never holds a client's `jti`.
pub fn replay_key(proof: &Proof) -> [u8; 16] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(proof.jkt.as_bytes());
    ctx.update(&[0]);
    ctx.update(proof.jti.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&ctx.finish().as_ref()[..16]);
    key
}

/// Until when `proof` must be remembered: it is acceptable until `iat +`
/// [`IAT_PAST`]; a second longer.
pub fn replay_until(proof: &Proof) -> UnixTime {
    UnixTime(proof.iat.saturating_add(IAT_PAST + 1))
}

/// The refusal of a proof seen before.
pub fn replayed() -> DpopError {
    invalid("the DPoP proof was already used (its jti was seen): sign a fresh proof per request")
}

/// DPoP's settings: the nonce key and whether nonces are required. (The
/// proofs seen are in the store: nothing per process.)
#[derive(Debug)]
pub struct Dpop {
    pub nonces: NonceKey,
    pub require_nonce: bool,
}

impl Dpop {
    pub fn new(nonces: NonceKey, require_nonce: bool) -> Dpop {
        Dpop { nonces, require_nonce }
    }

    /// Check the `DPoP` header values of a token request: `None` without
    /// one, the proof when it is valid and fresh, with the server's nonce
    /// when nonces are required. Whether it was seen before is the
    /// caller's to ask the store ([`replay_key`]).
    pub fn check(&self, headers: &[&[u8]], expected: &Expected<'_>, now: UnixTime) -> Result<Option<Proof>, DpopError> {
        self.check_with(headers, expected, self.require_nonce, now)
    }

    /// [`Dpop::check`], saying whether a nonce is required.
    pub fn check_with(
        &self,
        headers: &[&[u8]],
        expected: &Expected<'_>,
        require_nonce: bool,
        now: UnixTime,
    ) -> Result<Option<Proof>, DpopError> {
        let value = match headers {
            [] => return Ok(None),
            [one] => std::str::from_utf8(one).map_err(|_| invalid("the DPoP header is not ASCII"))?,
            _ => return Err(invalid("send exactly one DPoP header")),
        };
        let is_valid = |n: &str| self.nonces.is_valid(n, now);
        let nonce: Option<&dyn Fn(&str) -> bool> = if require_nonce { Some(&is_valid) } else { None };
        verify(value.trim(), expected, nonce, now).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use josekit::jwk::{Jwk, KeyPair};
    use josekit::jws::JwsSigner;
    use serde_json::json;

    use super::*;

    const HTU: &str = "https://id.example.com/token";
    const NOW: u64 = 1_800_000_000;

    fn es256() -> Jwk {
        josekit::jws::ES256.generate_key_pair().expect("key").to_jwk_key_pair()
    }

    fn public(jwk: &Jwk) -> Map<String, Value> {
        let mut map: Map<String, Value> = jwk.as_ref().clone();
        for m in PRIVATE_MEMBERS {
            map.remove(m);
        }
        map
    }

    /// A proof with `header` members over the defaults, signed by `key`.
    fn sign(key: &Jwk, alg: &str, header: Value, claims: Value) -> String {
        let mut h = json!({ "typ": "dpop+jwt", "alg": alg, "jwk": public(key) });
        for (k, v) in header.as_object().expect("object") {
            h[k] = v.clone();
        }
        let input = format!("{}.{}", B64.encode(h.to_string()), B64.encode(claims.to_string()));
        let signature = match alg {
            "ES256" => josekit::jws::ES256.signer_from_jwk(key).expect("signer").sign(input.as_bytes()),
            "EdDSA" => josekit::jws::EdDSA.signer_from_jwk(key).expect("signer").sign(input.as_bytes()),
            "RS256" => josekit::jws::RS256.signer_from_jwk(key).expect("signer").sign(input.as_bytes()),
            _ => josekit::jws::PS256.signer_from_jwk(key).expect("signer").sign(input.as_bytes()),
        }
        .expect("sign");
        format!("{input}.{}", B64.encode(signature))
    }

    fn claims(iat: u64) -> Value {
        json!({ "jti": new_jti(), "htm": "POST", "htu": HTU, "iat": iat })
    }

    fn new_jti() -> String {
        crate::token::claims::new_jti()
    }

    fn check(proof: &str) -> Result<Proof, DpopError> {
        verify(proof, &Expected { htm: "POST", htu: HTU, access_token: None }, None, UnixTime(NOW))
    }

    fn refused(proof: &str) -> String {
        match check(proof) {
            Err(DpopError::Invalid(m)) => m,
            other => panic!("expected invalid_dpop_proof, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_proof_yields_the_rfc_7638_thumbprint_of_its_key() {
        let key = es256();
        let proof = check(&sign(&key, "ES256", json!({}), claims(NOW))).expect("valid");
        // RFC 7638 3.1's example key and thumbprint.
        let example = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            thumbprint(example.as_object().expect("object")).expect("thumbprint"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        assert_eq!(proof.jkt, thumbprint(&public(&key)).expect("thumbprint"));
        assert_eq!(proof.iat, NOW);
    }

    #[test]
    fn every_offered_algorithm_verifies() {
        let ed = josekit::jws::EdDSA.generate_key_pair(josekit::jwk::alg::ed::EdCurve::Ed25519).expect("key");
        let rsa = josekit::jws::RS256.generate_key_pair(2048).expect("key").to_jwk_key_pair();
        let ps = josekit::jws::PS256.generate_key_pair(2048).expect("key").to_jwk_key_pair();
        check(&sign(&ed.to_jwk_key_pair(), "EdDSA", json!({}), claims(NOW))).expect("EdDSA");
        check(&sign(&rsa, "RS256", json!({}), claims(NOW))).expect("RS256");
        check(&sign(&ps, "PS256", json!({}), claims(NOW))).expect("PS256");
    }

    #[test]
    fn header_problems_are_named() {
        let key = es256();
        assert!(refused(&sign(&key, "ES256", json!({"typ": "JWT"}), claims(NOW))).contains("typ \"dpop+jwt\""));
        assert!(
            refused(&sign(&key, "ES256", json!({"alg": "none"}), claims(NOW))).contains("\"none\" is not accepted")
        );
        assert!(
            refused(&sign(&key, "ES256", json!({"alg": "HS256"}), claims(NOW))).contains("\"HS256\" is not accepted")
        );
        let with_private = json!({ "jwk": key.as_ref().clone() });
        assert!(refused(&sign(&key, "ES256", with_private, claims(NOW))).contains("private member \"d\""));
        let other = es256();
        let wrong_key = json!({ "jwk": public(&other) });
        assert!(refused(&sign(&key, "ES256", wrong_key, claims(NOW))).contains("signature does not verify"));
        assert!(refused("abc.def").contains("compact form"));
        assert!(refused(&"a".repeat(MAX_PROOF_LEN + 1)).contains("exceeds"));
        let no_jwk = sign(&key, "ES256", json!({"jwk": null}), claims(NOW));
        assert!(refused(&no_jwk).contains("jwk object"));
        // ES256 is verified by ring from the point: a changed payload, a
        // changed signature or a key of another curve is refused.
        let good = sign(&key, "ES256", json!({}), claims(NOW));
        let parts: Vec<&str> = good.split('.').collect();
        let mut other_claims = claims(NOW);
        other_claims["jti"] = json!("another");
        let swapped = format!("{}.{}.{}", parts[0], B64.encode(other_claims.to_string()), parts[2]);
        assert!(refused(&swapped).contains("signature does not verify"));
        let mut sig = B64.decode(parts[2]).expect("b64");
        sig[10] ^= 1;
        assert!(
            refused(&format!("{}.{}.{}", parts[0], parts[1], B64.encode(sig))).contains("signature does not verify")
        );
        let mut p384 = public(&key);
        p384["crv"] = json!("P-384");
        assert!(
            refused(&sign(&key, "ES256", json!({ "jwk": p384 }), claims(NOW))).contains("not a valid ES256 public key")
        );
    }

    #[test]
    fn claims_must_match_the_request_and_the_time() {
        let key = es256();
        let with = |patch: Value| {
            let mut c = claims(NOW);
            for (k, v) in patch.as_object().expect("object") {
                c[k] = v.clone();
            }
            sign(&key, "ES256", json!({}), c)
        };
        assert!(refused(&with(json!({"htm": "GET"}))).contains("htm \"GET\" does not match"));
        assert!(refused(&with(json!({"htu": "https://id.example.com/userinfo"}))).contains("htu"));
        assert!(refused(&with(json!({"htu": "https://evil.example.com/token"}))).contains("htu"));
        // RFC 9449 4.3: query and fragment are ignored; the URI is normalised.
        check(&with(json!({"htu": "HTTPS://ID.example.com:443/token?x=1#f"}))).expect("normalised htu");
        assert!(refused(&with(json!({"iat": NOW - IAT_PAST - 1}))).contains("stale"));
        check(&with(json!({"iat": NOW - IAT_PAST}))).expect("oldest accepted");
        assert!(refused(&with(json!({"iat": NOW + IAT_FUTURE + 1}))).contains("future"));
        check(&with(json!({"iat": NOW + IAT_FUTURE}))).expect("newest accepted");
        assert!(refused(&with(json!({"jti": null}))).contains("\"jti\""));
        assert!(refused(&with(json!({"iat": "now"}))).contains("\"iat\""));
    }

    /// A public RSA jwk built by hand: `n` of `bytes` random octets (the top
    /// bit set) and the exponent `e`; never verified, so no key is generated.
    fn rsa_shaped(bytes: usize, e: &str) -> Map<String, Value> {
        let mut n = vec![0u8; bytes];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut n).expect("random");
        n[0] |= 0x80;
        json!({ "kty": "RSA", "e": e, "n": B64.encode(n) }).as_object().expect("object").clone()
    }

    /// A proof whose header names `jwk`, with a signature that cannot verify.
    fn unsigned(alg: &str, jwk: &Map<String, Value>, claims: Value) -> String {
        let header = json!({ "typ": "dpop+jwt", "alg": alg, "jwk": jwk });
        format!("{}.{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()), B64.encode([7u8; 256]))
    }

    #[test]
    fn rsa_keys_need_the_exponent_65537_and_a_2048_to_4096_bit_modulus() {
        let exponent = refused(&unsigned("RS256", &rsa_shaped(256, "Aw"), claims(NOW)));
        assert!(exponent.contains("exponent 65537"), "{exponent}");
        for (bytes, bits) in [(2048, 16384), (1024, 8192), (128, 1024)] {
            let size = refused(&unsigned("PS256", &rsa_shaped(bytes, "AQAB"), claims(NOW)));
            assert!(size.contains("2048- to 4096-bit modulus") && size.contains(&format!("{bits} bits")), "{size}");
        }
        let mut padded = rsa_shaped(256, "AQAB");
        let n = B64.decode(padded["n"].as_str().expect("n")).expect("b64");
        padded["n"] = json!(B64.encode([&[0u8][..], &n].concat()));
        assert!(refused(&unsigned("RS256", &padded, claims(NOW))).contains("minimally encoded"));
        let padded_e = refused(&unsigned("RS256", &rsa_shaped(256, "AAEAAQ"), claims(NOW)));
        assert!(padded_e.contains("exponent 65537"), "{padded_e}");
        let ec = public(&es256());
        assert!(refused(&unsigned("RS256", &ec, claims(NOW))).contains("kty \"RSA\""));
        // The bounds themselves are accepted (and then verified).
        for bytes in [256, 512] {
            let m = refused(&unsigned("RS256", &rsa_shaped(bytes, "AQAB"), claims(NOW)));
            assert!(m.contains("signature does not verify") || m.contains("not a valid RS256"), "{m}");
        }
    }

    #[test]
    fn the_cheap_checks_come_before_the_signature() {
        // A 4096-bit key and a signature that cannot verify: each claim
        // problem is reported, so none of them paid for the signature.
        let key = rsa_shaped(512, "AQAB");
        let with = |patch: Value| {
            let mut c = claims(NOW);
            for (k, v) in patch.as_object().expect("object") {
                c[k] = v.clone();
            }
            unsigned("RS256", &key, c)
        };
        assert!(refused(&with(json!({"htm": "GET"}))).contains("htm \"GET\" does not match"));
        assert!(refused(&with(json!({"htu": "https://evil.example.com/token"}))).contains("htu"));
        assert!(refused(&with(json!({"iat": NOW - IAT_PAST - 1}))).contains("stale"));
        assert!(refused(&with(json!({"jti": ""}))).contains("jti"));
        let expected = Expected { htm: "POST", htu: HTU, access_token: None };
        let no_nonce = |_: &str| false;
        assert_eq!(verify(&with(json!({})), &expected, Some(&no_nonce), UnixTime(NOW)), Err(DpopError::UseNonce));
        // Only a proof that passes them all reaches the signature.
        assert!(refused(&with(json!({}))).contains("signature does not verify"));
        let es = es256();
        let mut bad_sig = sign(&es, "ES256", json!({}), json!({"jti": "j", "htm": "PUT", "htu": HTU, "iat": NOW}));
        bad_sig.push('A');
        assert!(refused(&bad_sig).contains("htm"));
    }

    #[test]
    fn ath_must_hash_the_access_token() {
        let key = es256();
        let mut c = claims(NOW);
        c["ath"] = ath("the-token").into();
        let proof = sign(&key, "ES256", json!({}), c);
        let expected = |token| Expected { htm: "POST", htu: HTU, access_token: Some(token) };
        verify(&proof, &expected("the-token"), None, UnixTime(NOW)).expect("matching ath");
        let err = verify(&proof, &expected("another-token"), None, UnixTime(NOW)).expect_err("wrong ath");
        assert_eq!(err, DpopError::Invalid("the DPoP proof's ath is not the SHA-256 of the access token".into()));
        let bare = sign(&key, "ES256", json!({}), claims(NOW));
        let err = verify(&bare, &expected("the-token"), None, UnixTime(NOW)).expect_err("no ath");
        assert!(matches!(err, DpopError::Invalid(m) if m.contains("\"ath\"")));
    }

    #[test]
    fn nonces_are_valid_for_the_current_and_the_previous_window_at_any_replica() {
        let master = crate::token::master_key::MasterKey::from_bytes(&[7; 32]);
        let purpose = crate::token::master_key::Purpose::DpopNonce;
        let (here, there) = (NonceKey::new(master.derive(purpose)), NonceKey::new(master.derive(purpose)));
        let t = UnixTime(NOW - NOW % NONCE_WINDOW);
        let nonce = here.current(t);
        assert_eq!(nonce, there.current(t.plus(crate::duration::Secs::new(NONCE_WINDOW - 1))));
        assert!(there.is_valid(&nonce, t));
        assert!(there.is_valid(&nonce, UnixTime(t.as_secs() + 2 * NONCE_WINDOW - 1)));
        assert!(!there.is_valid(&nonce, UnixTime(t.as_secs() + 2 * NONCE_WINDOW)), "two windows later");
        assert!(!there.is_valid("forged", t));
        let other = NonceKey::new(crate::token::master_key::MasterKey::from_bytes(&[8; 32]).derive(purpose));
        assert!(!other.is_valid(&nonce, t), "another master key");
    }

    #[test]
    fn a_required_nonce_is_asked_for_then_accepted() {
        let master = crate::token::master_key::MasterKey::from_bytes(&[7; 32]);
        let dpop = Dpop::new(NonceKey::new(master.derive(crate::token::master_key::Purpose::DpopNonce)), true);
        let key = es256();
        let now = UnixTime(NOW);
        let expected = Expected { htm: "POST", htu: HTU, access_token: None };
        let without = sign(&key, "ES256", json!({}), claims(NOW));
        assert_eq!(dpop.check(&[without.as_bytes()], &expected, now), Err(DpopError::UseNonce));
        let mut c = claims(NOW);
        c["nonce"] = dpop.nonces.current(now).into();
        let with = sign(&key, "ES256", json!({}), c);
        assert!(dpop.check(&[with.as_bytes()], &expected, now).expect("valid").is_some());
        assert_eq!(dpop.check(&[], &expected, now), Ok(None));
        let two = dpop.check(&[with.as_bytes(), with.as_bytes()], &expected, now).expect_err("two headers");
        assert_eq!(two, DpopError::Invalid("send exactly one DPoP header".into()));
        // A stale nonce is asked for again.
        let later = UnixTime(NOW + 3 * NONCE_WINDOW);
        let mut c = claims(later.as_secs());
        c["nonce"] = dpop.nonces.current(now).into();
        let stale = sign(&key, "ES256", json!({}), c);
        assert_eq!(dpop.check(&[stale.as_bytes()], &expected, later), Err(DpopError::UseNonce));
    }

    #[test]
    fn a_proof_is_remembered_by_a_digest_of_its_key_and_jti_until_its_iat_is_too_old() {
        let proof = Proof { jkt: "k".into(), jti: "j".into(), iat: NOW };
        assert_eq!(replay_key(&proof), replay_key(&proof.clone()));
        assert_ne!(replay_key(&proof), replay_key(&Proof { jkt: "other".into(), ..proof.clone() }), "jti per key");
        assert_ne!(replay_key(&proof), replay_key(&Proof { jti: "j2".into(), ..proof.clone() }));
        // "k" + "j" and "kj" + "" do not collide.
        let shifted = Proof { jkt: "kj".into(), jti: String::new(), iat: NOW };
        assert_ne!(replay_key(&proof), replay_key(&shifted));
        assert_eq!(replay_until(&proof), UnixTime(NOW + IAT_PAST + 1));
    }
}
