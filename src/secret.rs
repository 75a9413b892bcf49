//! Secrets: a type that never prints, argon2id hashing for passwords and
//! client secrets, and a fast verifier cache so that a correct client secret
//! costs one HMAC rather than one argon2 run per request.
//!
//! Stored forms are argon2id PHC strings only (RFC 6819 5.1.4.1.3). The cache
//! keeps, per client, HMAC-SHA256 of the last secret that passed argon2, under
//! a key drawn at start-up and never written anywhere; comparisons are in
//! constant time.

use std::collections::HashMap;
use std::fmt;
use std::sync::RwLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use ring::hmac;
use subtle::ConstantTimeEq;

/// A secret value whose `Debug` and `Display` print nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The value itself; call only where it is used, never to log.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// An argon2id hash in PHC string form (`$argon2id$v=19$...`).
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHashString(String);

impl fmt::Debug for PasswordHashString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHashString(<argon2id>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("is not an argon2 PHC hash string ($argon2id$v=19$m=...,t=...,p=...$salt$hash): {0}")]
    Malformed(String),
    #[error("uses {0}; only argon2id (or argon2i/argon2d) hashes are accepted")]
    WrongAlgorithm(String),
    #[error("could not be hashed: {0}")]
    Hashing(String),
}

impl PasswordHashString {
    /// Parse a stored hash, refusing anything that is not argon2.
    pub fn parse(s: &str) -> Result<Self, HashError> {
        let parsed = PasswordHash::new(s).map_err(|e| HashError::Malformed(e.to_string()))?;
        let alg = parsed.algorithm.as_str();
        if !alg.starts_with("argon2") {
            return Err(HashError::WrongAlgorithm(alg.to_owned()));
        }
        Ok(PasswordHashString(s.to_owned()))
    }

    /// Hash a plain value with argon2id and a fresh salt.
    pub fn hash(plain: &Secret) -> Result<Self, HashError> {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(plain.expose().as_bytes(), &salt)
            .map(|h| PasswordHashString(h.to_string()))
            .map_err(|e| HashError::Hashing(e.to_string()))
    }

    /// Constant-time argon2 verification (slow by design: run it off the
    /// async executor).
    pub fn verify(&self, candidate: &str) -> bool {
        match PasswordHash::new(&self.0) {
            Ok(parsed) => Argon2::default().verify_password(candidate.as_bytes(), &parsed).is_ok(),
            Err(_) => false,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Remembers, per key (a client id), a keyed digest of the last secret that
/// passed argon2 verification, so repeated correct authentications are cheap.
pub struct VerifiedCache {
    key: hmac::Key,
    entries: RwLock<HashMap<String, hmac::Tag>>,
}

impl fmt::Debug for VerifiedCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VerifiedCache")
    }
}

impl VerifiedCache {
    pub fn new() -> Result<Self, ring::error::Unspecified> {
        let rng = ring::rand::SystemRandom::new();
        Ok(VerifiedCache { key: hmac::Key::generate(hmac::HMAC_SHA256, &rng)?, entries: RwLock::new(HashMap::new()) })
    }

    /// Whether `candidate` is the secret last verified for `id`.
    pub fn matches(&self, id: &str, candidate: &str) -> bool {
        let tag = hmac::sign(&self.key, candidate.as_bytes());
        let Ok(entries) = self.entries.read() else { return false };
        entries.get(id).is_some_and(|known| bool::from(known.as_ref().ct_eq(tag.as_ref())))
    }

    /// Record `secret` as verified for `id`.
    pub fn remember(&self, id: &str, secret: &str) {
        let tag = hmac::sign(&self.key, secret.as_bytes());
        if let Ok(mut entries) = self.entries.write() {
            entries.insert(id.to_owned(), tag);
        }
    }

    /// Forget `id` (its secret changed).
    pub fn forget(&self, id: &str) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        let h = PasswordHashString::hash(&s).expect("hash");
        assert!(!format!("{h:?}").contains("argon2id$"));
    }

    #[test]
    fn hashes_verify_only_the_right_value() {
        let h = PasswordHashString::hash(&Secret::new("web-secret")).expect("hash");
        assert!(h.as_str().starts_with("$argon2id$"));
        assert!(h.verify("web-secret"));
        assert!(!h.verify("web-secreT"));
        assert!(!h.verify(""));
        let reparsed = PasswordHashString::parse(h.as_str()).expect("round trip");
        assert!(reparsed.verify("web-secret"));
    }

    #[test]
    fn only_argon2_hashes_are_accepted() {
        assert!(matches!(PasswordHashString::parse("plain"), Err(HashError::Malformed(_))));
        let pbkdf = "$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$0123456789abcdef0123456789abcdef0123456789a";
        assert!(PasswordHashString::parse(pbkdf).is_err());
    }

    #[test]
    fn the_cache_matches_only_the_remembered_secret() {
        let cache = VerifiedCache::new().expect("rng");
        assert!(!cache.matches("web", "s3cret"));
        cache.remember("web", "s3cret");
        assert!(cache.matches("web", "s3cret"));
        assert!(!cache.matches("web", "s3creT"));
        assert!(!cache.matches("other", "s3cret"));
        cache.forget("web");
        assert!(!cache.matches("web", "s3cret"));
    }
}
