//! Refresh tokens: opaque to clients, never stored by tenure.
//!
//! A refresh token is `rt1.` + base64url(family id (16 bytes) || generation
//! (8 bytes, big-endian) || tag (32 bytes)), where the tag is
//! HMAC-SHA256(refresh key, "rt1" || family id || generation || family salt).
//! The tag is 256 bits an attacker cannot predict without the master key
//! (RFC 6749 10.10), and the family record alone — with its salt and current
//! generation — verifies any generation's token and reproduces the successor
//! (SPEC 5, idempotent grace) without minting a second child. The store holds
//! no token and no hash of one; a copy of the store mints nothing.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::hmac;

const PREFIX: &str = "rt1.";

/// What a presented refresh token claims, before verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Presented {
    pub family_id: String,
    pub generation: u64,
    tag: [u8; 32],
}

/// The refresh-token MAC key.
pub struct RefreshKey(hmac::Key);

impl std::fmt::Debug for RefreshKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshKey(<redacted>)")
    }
}

fn id_bytes(family_id: &str) -> Option<[u8; 16]> {
    uuid::Uuid::try_parse(family_id).ok().map(|u| *u.as_bytes())
}

impl RefreshKey {
    pub fn new(key: hmac::Key) -> Self {
        RefreshKey(key)
    }

    fn message(id: &[u8; 16], generation: u64, salt: &str) -> Vec<u8> {
        let mut m = Vec::with_capacity(3 + 16 + 8 + salt.len());
        m.extend_from_slice(b"rt1");
        m.extend_from_slice(id);
        m.extend_from_slice(&generation.to_be_bytes());
        m.extend_from_slice(salt.as_bytes());
        m
    }

    /// The token of `generation` in the family `family_id` with `salt`.
    pub fn token(&self, family_id: &str, salt: &str, generation: u64) -> Option<String> {
        let id = id_bytes(family_id)?;
        let tag = hmac::sign(&self.0, &Self::message(&id, generation, salt));
        let mut raw = Vec::with_capacity(56);
        raw.extend_from_slice(&id);
        raw.extend_from_slice(&generation.to_be_bytes());
        raw.extend_from_slice(tag.as_ref());
        Some(format!("{PREFIX}{}", B64.encode(raw)))
    }

    /// Whether `presented` was issued for the family with `salt` (constant
    /// time). A token that fails this was never issued: it kills nothing.
    pub fn verify(&self, presented: &Presented, salt: &str) -> bool {
        let Some(id) = id_bytes(&presented.family_id) else { return false };
        hmac::verify(&self.0, &Self::message(&id, presented.generation, salt), &presented.tag).is_ok()
    }
}

/// Parse the shape of a presented token; `None` for anything malformed.
pub fn parse(token: &str) -> Option<Presented> {
    let raw = B64.decode(token.strip_prefix(PREFIX)?).ok()?;
    if raw.len() != 56 {
        return None;
    }
    let id = uuid::Uuid::from_slice(raw.get(..16)?).ok()?;
    let generation = u64::from_be_bytes(raw.get(16..24)?.try_into().ok()?);
    let tag: [u8; 32] = raw.get(24..56)?.try_into().ok()?;
    Some(Presented { family_id: id.simple().to_string(), generation, tag })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::master_key::{MasterKey, Purpose};

    fn key(seed: u8) -> RefreshKey {
        RefreshKey::new(MasterKey::from_bytes(&[seed; 32]).derive(Purpose::RefreshToken))
    }

    const FID: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_token_verifies_for_its_family_generation_and_salt_only() {
        let k = key(1);
        let t = k.token(FID, "salt", 7).expect("token");
        assert!(t.starts_with("rt1.") && t.len() > 70);
        let p = parse(&t).expect("parses");
        assert_eq!((p.family_id.as_str(), p.generation), (FID, 7));
        assert!(k.verify(&p, "salt"));
        assert!(!k.verify(&p, "other salt"));
        assert!(!key(2).verify(&p, "salt"), "another master key");
        let mut forged = p.clone();
        forged.generation = 8;
        assert!(!k.verify(&forged, "salt"), "the generation is bound");
    }

    #[test]
    fn the_same_generation_always_yields_the_same_token() {
        let k = key(1);
        assert_eq!(k.token(FID, "s", 3), k.token(FID, "s", 3));
        assert_ne!(k.token(FID, "s", 3), k.token(FID, "s", 4));
    }

    #[test]
    fn malformed_tokens_do_not_parse() {
        for bad in ["", "rt1.", "rt1.!!!", "xx1.AAAA", &format!("rt1.{}", B64.encode([0u8; 55]))] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
