//! A bounded cache of access tokens whose signature has been verified.
//!
//! Verifying an ES256 signature costs far more than everything else an
//! introspection does, and resource servers present the same token again
//! and again. The cache remembers, per token (keyed by its SHA-256), the
//! claims that passed [`jwt::verify`](super::jwt::verify) and the `kid` of
//! the key that signed it. Only the signature check is skipped on a hit: the
//! key must still be published (a revoked or expired key kills its tokens at
//! once, cached or not), the lifetime bound and expiry are checked against
//! `now`, and callers still check the token's family, session and user on
//! every use, so a revocation is seen at once.

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

#[derive(Debug)]
struct Entry {
    claims: AccessClaims,
    kid: String,
}

#[derive(Debug, Default)]
pub struct VerifiedTokens {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

impl VerifiedTokens {
    pub fn new() -> Self {
        Self::default()
    }

    /// [`jwt::verify`] for access tokens, skipping the signature check for
    /// a token verified before whose key is still published.
    pub fn verify(
        &self,
        token: &str,
        keys: &KeySet,
        retain: Secs,
        max_lifetime: Secs,
        issuer: &str,
        now: UnixTime,
    ) -> Result<AccessClaims, VerifyError> {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(digest.as_ref());
        if let Ok(entries) = self.entries.lock()
            && let Some(entry) = entries.get(&key)
        {
            let claims = &entry.claims;
            return if !keys.is_published(&entry.kid, now, retain) {
                Err(VerifyError::UnknownKey)
            } else if !jwt::within_lifetime(claims.iat, claims.exp, max_lifetime) {
                Err(VerifyError::TooLong)
            } else if claims.exp <= now.as_secs() {
                Err(VerifyError::Expired)
            } else {
                Ok(claims.clone())
            };
        }
        let claims: AccessClaims = jwt::verify(token, TokenType::Access, keys, retain, max_lifetime, issuer, now)?;
        // `jwt::verify` found the key by this kid.
        let kid = jwt::header_kid(token).unwrap_or_default();
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CAPACITY {
                entries.clear();
            }
            entries.insert(key, Entry { claims: claims.clone(), kid });
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::SigningAlg;
    use crate::token::keys::KeyDir;

    const T0: UnixTime = UnixTime(1_700_000_000);
    const RETAIN: Secs = Secs::hours(1);
    const MAX: Secs = Secs::days(30);

    fn claims(exp: u64) -> AccessClaims {
        AccessClaims {
            iss: "i".into(),
            sub: "s".into(),
            aud: "i".into(),
            client_id: "c".into(),
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

    #[test]
    fn a_hit_still_honours_expiry_and_a_forgery_never_hits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kd = KeyDir::new(dir.path());
        kd.ensure_active(SigningAlg::ES256, T0, Secs::ZERO).expect("key");
        let keys = kd.load().expect("load");
        let claims = claims(T0.as_secs() + 60);
        let token = jwt::sign(keys.active(T0), TokenType::Access, &claims).expect("sign");
        let cache = VerifiedTokens::new();
        assert_eq!(cache.verify(&token, &keys, RETAIN, MAX, "i", T0), Ok(claims.clone()));
        assert_eq!(cache.verify(&token, &keys, RETAIN, MAX, "i", T0), Ok(claims), "a hit");
        assert_eq!(cache.verify(&token, &keys, RETAIN, MAX, "i", T0.plus(Secs::new(60))), Err(VerifyError::Expired));
        let mut forged = token.clone();
        forged.push('A');
        assert!(cache.verify(&forged, &keys, RETAIN, MAX, "i", T0).is_err(), "a different token is verified afresh");
    }

    #[test]
    fn a_cached_token_dies_with_its_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kd = KeyDir::new(dir.path());
        kd.ensure_active(SigningAlg::ES256, T0, Secs::ZERO).expect("key");
        let keys = kd.load().expect("load");
        let kid = keys.active(T0).kid.clone();
        let token = jwt::sign(keys.active(T0), TokenType::Access, &claims(T0.as_secs() + 600)).expect("sign");
        let cache = VerifiedTokens::new();
        assert!(cache.verify(&token, &keys, RETAIN, MAX, "i", T0).is_ok(), "verified and cached");

        // Revoked: the reloaded key set no longer has the kid; the cache
        // entry must not outlive it.
        kd.revoke(&kid, T0.plus(Secs::new(1))).expect("revoke");
        let reloaded = kd.load().expect("reload");
        let later = T0.plus(Secs::new(2));
        assert_eq!(cache.verify(&token, &reloaded, RETAIN, MAX, "i", later), Err(VerifyError::UnknownKey));

        // Retired and past its publication: refused from the cache too.
        let dir = tempfile::tempdir().expect("tempdir");
        let kd = KeyDir::new(dir.path());
        kd.ensure_active(SigningAlg::ES256, T0, Secs::ZERO).expect("key");
        let keys = kd.load().expect("load");
        let token = jwt::sign(keys.active(T0), TokenType::Access, &claims(T0.as_secs() + 7200)).expect("sign");
        assert!(cache.verify(&token, &keys, RETAIN, MAX, "i", T0).is_ok());
        kd.rotate(SigningAlg::ES256, T0, Secs::ZERO).expect("rotate");
        let rotated = kd.load().expect("reload");
        assert!(cache.verify(&token, &rotated, RETAIN, MAX, "i", T0.plus(Secs::new(10))).is_ok(), "still published");
        assert_eq!(
            cache.verify(&token, &rotated, RETAIN, MAX, "i", T0.plus(RETAIN)),
            Err(VerifyError::UnknownKey),
            "the key left the JWKS: its tokens go with it"
        );
    }

    #[test]
    fn a_cached_token_is_held_to_the_lifetime_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kd = KeyDir::new(dir.path());
        kd.ensure_active(SigningAlg::ES256, T0, Secs::ZERO).expect("key");
        let keys = kd.load().expect("load");
        let token = jwt::sign(keys.active(T0), TokenType::Access, &claims(T0.as_secs() + 3600)).expect("sign");
        let cache = VerifiedTokens::new();
        assert!(cache.verify(&token, &keys, RETAIN, MAX, "i", T0).is_ok());
        assert_eq!(cache.verify(&token, &keys, RETAIN, Secs::minutes(30), "i", T0), Err(VerifyError::TooLong));
        let fresh = VerifiedTokens::new();
        assert_eq!(fresh.verify(&token, &keys, RETAIN, Secs::minutes(30), "i", T0), Err(VerifyError::TooLong));
    }
}
