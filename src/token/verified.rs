//! A bounded cache of access tokens whose signature has been verified.
//!
//! Verifying an ES256 signature costs far more than everything else an
//! introspection does, and resource servers present the same token again
//! and again. The cache remembers, per token (keyed by its SHA-256), the
//! claims that passed [`jwt::verify`](super::jwt::verify). Only the
//! signature check is skipped on a hit: expiry is checked against `now`, and
//! callers still check the token's family, session and user on every use,
//! so a revocation is seen at once.

use std::collections::HashMap;
use std::sync::Mutex;

use super::claims::AccessClaims;
use super::jwt::{self, TokenType, VerifyError};
use super::keys::KeySet;
use crate::clock::UnixTime;
use crate::duration::Secs;

/// At this many entries the cache starts over (cheaper than LRU bookkeeping;
/// it refills with the tokens in use).
const CAPACITY: usize = 100_000;

#[derive(Debug, Default)]
pub struct VerifiedTokens {
    entries: Mutex<HashMap<[u8; 32], AccessClaims>>,
}

impl VerifiedTokens {
    pub fn new() -> Self {
        Self::default()
    }

    /// [`jwt::verify`] for access tokens, skipping the signature check for
    /// a token verified before.
    pub fn verify(
        &self,
        token: &str,
        keys: &KeySet,
        retain: Secs,
        issuer: &str,
        now: UnixTime,
    ) -> Result<AccessClaims, VerifyError> {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(digest.as_ref());
        if let Ok(entries) = self.entries.lock()
            && let Some(claims) = entries.get(&key)
        {
            return if claims.exp > now.as_secs() { Ok(claims.clone()) } else { Err(VerifyError::Expired) };
        }
        let claims: AccessClaims = jwt::verify(token, TokenType::Access, keys, retain, issuer, now)?;
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CAPACITY {
                entries.clear();
            }
            entries.insert(key, claims.clone());
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SigningAlg;
    use crate::token::keys::KeyDir;

    const T0: UnixTime = UnixTime(1_700_000_000);

    #[test]
    fn a_hit_still_honours_expiry_and_a_forgery_never_hits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kd = KeyDir::new(dir.path());
        kd.ensure_active(SigningAlg::ES256, T0).expect("key");
        let keys = kd.load().expect("load");
        let claims = AccessClaims {
            iss: "i".into(),
            sub: "s".into(),
            aud: "i".into(),
            client_id: "c".into(),
            exp: T0.as_secs() + 60,
            iat: T0.as_secs(),
            jti: "j".into(),
            scope: String::new(),
            sid: None,
            auth_time: None,
            fid: None,
            act: None,
            permissions: None,
        };
        let token = jwt::sign(keys.active(), TokenType::Access, &claims).expect("sign");
        let cache = VerifiedTokens::new();
        assert_eq!(cache.verify(&token, &keys, Secs::hours(1), "i", T0), Ok(claims.clone()));
        assert_eq!(cache.verify(&token, &keys, Secs::hours(1), "i", T0), Ok(claims), "a hit");
        assert_eq!(cache.verify(&token, &keys, Secs::hours(1), "i", T0.plus(Secs::new(60))), Err(VerifyError::Expired));
        let mut forged = token.clone();
        forged.push('A');
        assert!(cache.verify(&forged, &keys, Secs::hours(1), "i", T0).is_err(), "a different token is verified afresh");
    }
}
