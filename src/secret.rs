//! Secrets: a type that never prints, argon2id hashing for passwords and
//! client secrets, and a fast verifier cache so that a correct client secret
//! costs one HMAC rather than one argon2 run per request.
//!
//! Stored forms are argon2id PHC strings only (RFC 6819 5.1.4.1.3). The cache
//! keeps, per client, HMAC-SHA256 of the last secret that passed argon2, under
//! a key drawn at start-up and never written anywhere; comparisons are in
//! constant time.
//!
//! Every argon2 verification runs through a [`HashingPool`]: at most
//! `hashing_concurrency` at once (each takes about 19 MiB), the rest wait a
//! short while and are then turned away ([`VerifyError::Busy`]), so a burst
//! of sign-ins cannot take the process's memory with it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

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
    #[error(
        "asks argon2 for {0}; at most m={MAX_M_COST_KIB} KiB (256 MiB), t={MAX_T_COST} and p={MAX_P_COST} are accepted, so no stored hash chooses the server's memory or time"
    )]
    TooCostly(String),
}

/// The most memory (KiB) a stored argon2 hash may ask for: 256 MiB.
pub const MAX_M_COST_KIB: u32 = 256 * 1024;
/// The most passes a stored argon2 hash may ask for.
pub const MAX_T_COST: u32 = 16;
/// The most lanes a stored argon2 hash may ask for.
pub const MAX_P_COST: u32 = 16;

/// The argon2 parameters of `parsed`, refused beyond the bounds above: a
/// hash string names its own cost, and whoever may store one (a config
/// file, an administrator) must not be able to make one sign-in attempt
/// reserve gigabytes or run for minutes (SECURITY.md, "no caller picks the
/// server's cost").
fn bounded_params(parsed: &PasswordHash<'_>) -> Result<argon2::Params, HashError> {
    let params = argon2::Params::try_from(parsed).map_err(|e| HashError::Malformed(e.to_string()))?;
    let (m, t, p) = (params.m_cost(), params.t_cost(), params.p_cost());
    if m > MAX_M_COST_KIB || t > MAX_T_COST || p > MAX_P_COST {
        return Err(HashError::TooCostly(format!("m={m} KiB, t={t}, p={p}")));
    }
    Ok(params)
}

impl PasswordHashString {
    /// Parse a hash given to tenure (config file, admin API), refusing
    /// anything that is not argon2 or asks for more than the cost bounds.
    pub fn parse(s: &str) -> Result<Self, HashError> {
        let parsed = Self::argon2(s)?;
        bounded_params(&parsed)?;
        Ok(PasswordHashString(s.to_owned()))
    }

    /// Read back a hash tenure stored. One stored before the cost bounds
    /// existed still loads (so listings keep working); [`Self::verify`]
    /// refuses to run it.
    pub fn stored(s: &str) -> Result<Self, HashError> {
        Self::argon2(s)?;
        Ok(PasswordHashString(s.to_owned()))
    }

    fn argon2(s: &str) -> Result<PasswordHash<'_>, HashError> {
        let parsed = PasswordHash::new(s).map_err(|e| HashError::Malformed(e.to_string()))?;
        let alg = parsed.algorithm.as_str();
        if !alg.starts_with("argon2") {
            return Err(HashError::WrongAlgorithm(alg.to_owned()));
        }
        Ok(parsed)
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
            // A hash stored before the bounds existed is refused, not run.
            Ok(parsed) if bounded_params(&parsed).is_ok() => {
                Argon2::default().verify_password(candidate.as_bytes(), &parsed).is_ok()
            }
            Ok(_) => {
                tracing::warn!("a stored argon2 hash exceeds the cost bounds; the attempt is refused unverified");
                false
            }
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

    /// A keyed digest of (`id`, `candidate`): names one verification without
    /// keeping the secret (single-flight key).
    pub fn fingerprint(&self, id: &str, candidate: &str) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(&(id.len() as u64).to_be_bytes());
        ctx.update(id.as_bytes());
        ctx.update(candidate.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    /// Forget `id` (its secret changed).
    pub fn forget(&self, id: &str) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(id);
        }
    }
}

/// How long a verification waits for a free hashing slot by default.
pub const DEFAULT_HASHING_WAIT: Duration = Duration::from_secs(2);

/// The default hashing concurrency: the number of cores.
pub fn default_hashing_concurrency() -> usize {
    std::thread::available_parallelism().map_or(4, std::num::NonZeroUsize::get)
}

/// Why a verification did not give an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Every hashing slot stayed busy for the whole wait: try again shortly.
    #[error("every password hashing slot is busy")]
    Busy,
    /// The hashing task died (it panicked or the runtime is shutting down).
    #[error("the password hashing task was aborted")]
    Aborted,
}

/// The bound on concurrent argon2 verifications (see the module docs).
#[derive(Clone)]
pub struct HashingPool {
    permits: Arc<tokio::sync::Semaphore>,
    size: usize,
    wait: Duration,
    runs: prometheus_client::metrics::counter::Counter,
    busy: prometheus_client::metrics::counter::Counter,
}

impl fmt::Debug for HashingPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HashingPool").field("size", &self.size).field("wait", &self.wait).finish()
    }
}

impl Default for HashingPool {
    fn default() -> Self {
        HashingPool::new(default_hashing_concurrency(), DEFAULT_HASHING_WAIT)
    }
}

impl HashingPool {
    /// At most `size` (at least 1) verifications at once; a caller waits at
    /// most `wait` for a slot.
    pub fn new(size: usize, wait: Duration) -> HashingPool {
        let size = size.max(1);
        HashingPool {
            permits: Arc::new(tokio::sync::Semaphore::new(size)),
            size,
            wait,
            runs: Default::default(),
            busy: Default::default(),
        }
    }

    /// Count verifications run and refused in these counters (metrics).
    pub fn with_counters(
        mut self,
        runs: prometheus_client::metrics::counter::Counter,
        busy: prometheus_client::metrics::counter::Counter,
    ) -> HashingPool {
        self.runs = runs;
        self.busy = busy;
        self
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// How many argon2 verifications have run.
    pub fn runs(&self) -> u64 {
        self.runs.get()
    }

    /// Hash `plain` (a new password or client secret set at runtime) on a
    /// blocking thread, within the same bound as verifications.
    pub async fn hash(&self, plain: &Secret) -> Result<Result<PasswordHashString, HashError>, VerifyError> {
        let permit = self.slot().await?;
        let plain = plain.clone();
        tokio::task::spawn_blocking(move || {
            let hashed = PasswordHashString::hash(&plain);
            drop(permit);
            hashed
        })
        .await
        .map_err(|_| VerifyError::Aborted)
    }

    /// A hashing slot, waiting at most `wait` for one.
    async fn slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, VerifyError> {
        match tokio::time::timeout(self.wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(VerifyError::Aborted),
            Err(_) => {
                self.busy.inc();
                Err(VerifyError::Busy)
            }
        }
    }

    /// Verify `candidate` against `hash` on a blocking thread, once a slot
    /// is free. The slot is held until argon2 finishes, even if the caller
    /// gives up, so the bound holds.
    pub async fn verify(&self, hash: &PasswordHashString, candidate: &Secret) -> Result<bool, VerifyError> {
        let permit = self.slot().await?;
        self.runs.inc();
        let hash = hash.clone();
        let candidate = candidate.clone();
        tokio::task::spawn_blocking(move || {
            let matches = hash.verify(candidate.expose());
            drop(permit);
            matches
        })
        .await
        .map_err(|_| VerifyError::Aborted)
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
    fn hashes_beyond_the_cost_bounds_are_refused_and_never_run() {
        let salt = "c29tZXNhbHRzb21lc2FsdA";
        let hash = "JGFyZ29uMmlkJHY9MTkkbT0xOTQ1Nix0PTIscD0x";
        let with = |m: u32, t: u32, p: u32| format!("$argon2id$v=19$m={m},t={t},p={p}${salt}${hash}");
        // The server's own parameters and the bounds themselves are fine.
        assert!(PasswordHashString::parse(&with(19456, 2, 1)).is_ok());
        assert!(PasswordHashString::parse(&with(MAX_M_COST_KIB, MAX_T_COST, MAX_P_COST)).is_ok());
        for (m, t, p) in [(MAX_M_COST_KIB + 1, 2, 1), (19456, MAX_T_COST + 1, 1), (19456, 2, MAX_P_COST + 1)] {
            let e = PasswordHashString::parse(&with(m, t, p)).expect_err("too costly");
            assert!(matches!(e, HashError::TooCostly(_)), "{e:?}");
            let message = e.to_string();
            assert!(message.contains("m=262144 KiB (256 MiB), t=16 and p=16"), "{message}");
        }
        // Terabytes of memory: loads from the store but is never run.
        let huge = PasswordHashString::stored(&with(u32::MAX / 2, 2, 1)).expect("stored hashes load");
        assert!(!huge.verify("anything"));
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

    #[tokio::test]
    async fn the_pool_bounds_concurrent_verifications() {
        let hash = PasswordHashString::hash(&Secret::new("right")).expect("hash");
        let pool = HashingPool::new(1, Duration::ZERO);
        let candidates: Vec<Secret> = (0..8).map(|i| Secret::new(format!("guess-{i}"))).collect();
        let outcomes = futures_join_all(candidates.iter().map(|c| pool.verify(&hash, c))).await;
        assert!(outcomes.contains(&Ok(false)), "one ran: {outcomes:?}");
        assert!(outcomes.contains(&Err(VerifyError::Busy)), "the others found the only slot taken: {outcomes:?}");
        assert_eq!(pool.runs(), outcomes.iter().filter(|o| o.is_ok()).count() as u64);
        let patient = HashingPool::new(1, Duration::from_secs(30));
        let outcomes = futures_join_all(candidates.iter().map(|c| patient.verify(&hash, c))).await;
        assert!(outcomes.iter().all(|o| *o == Ok(false)), "with a wait, all are served in turn: {outcomes:?}");
        assert_eq!(patient.verify(&hash, &Secret::new("right")).await, Ok(true));
        let fresh = patient.hash(&Secret::new("new-secret")).await.expect("a slot").expect("hashed");
        assert!(fresh.verify("new-secret"));
    }

    /// Run futures concurrently on this task (no extra dependency).
    async fn futures_join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
        let mut set = Vec::new();
        for f in futures {
            set.push(Box::pin(f));
        }
        let mut out: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
        std::future::poll_fn(|cx| {
            let mut pending = false;
            for (i, f) in set.iter_mut().enumerate() {
                if out[i].is_none() {
                    match f.as_mut().poll(cx) {
                        std::task::Poll::Ready(v) => out[i] = Some(v),
                        std::task::Poll::Pending => pending = true,
                    }
                }
            }
            if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
        })
        .await;
        out.into_iter().flatten().collect()
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
