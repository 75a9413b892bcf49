//! Signing keys: generation, the on-disk key directory, rotation with
//! publish-ahead, retirement, revocation and the JWKS (SPEC 5; OIDC Core
//! 10.1.1, 15.1; RFC 7517, RFC 7638).
//!
//! `keys/` holds one PKCS#8 PEM file per key (`<kid>.pem`, mode 0600) and a
//! manifest `keys.json` listing each key's algorithm, role, creation time,
//! the time it starts signing (`active_from`) and, when it applies, an
//! explicit retirement or a revocation.
//!
//! Keys have two roles: the *primary* key signs every token with
//! `signing_alg`; when `signing_alg` is not RS256, an RS256 *companion*
//! signs the ID tokens of clients that ask for RS256 (OIDC Core 15.1). Each
//! role moves through the same states (see [`KeyState`]):
//!
//! - **next**: created by a rotation, published in the JWKS at once, not yet
//!   signing: verifiers that cache the JWKS learn it before its first token;
//! - **active**: signing, from `active_from` (creation + the publish-ahead
//!   period; at once on a first start);
//! - **retired**: no longer signing since the next key of its role became
//!   active, still published until every token it signed has expired
//!   (retirement + the longest token lifetime + clock-skew leeway);
//! - **expired**: past that, deleted by `prune`;
//! - **revoked**: withdrawn at once by `tenure keys revoke` (compromise):
//!   gone from the JWKS, its tokens refused, its private key deleted.
//!
//! A key's retirement is not stored but derived: it is the `active_from` of
//! the first later, unrevoked key of its role (or an explicit `retired_at`,
//! for manifests written before publish-ahead and for a companion whose role
//! ended). So revoking a key never leaves a gap: its neighbours close in.
//!
//! The `kid` is the RFC 7638 JWK thumbprint (SHA-256, base64url).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde::{Deserialize, Serialize};

use super::SigningAlg;
use crate::clock::UnixTime;
use crate::duration::Secs;

pub const MANIFEST: &str = "keys.json";
/// Added to the longest token lifetime before a retired key leaves the JWKS,
/// for verifiers whose clocks run behind.
pub const CLOCK_SKEW_LEEWAY: Secs = Secs::minutes(5);

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key directory {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("key manifest {path} is not valid: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("key {kid} ({path}) cannot be loaded: {message}")]
    Load { kid: String, path: PathBuf, message: String },
    #[error("cannot generate a {alg} key: {message}")]
    Generate { alg: SigningAlg, message: String },
    #[error("signing failed")]
    Sign,
    #[error("cannot seal or unseal a private signing key (AES-256-GCM)")]
    Seal,
    #[error(
        "the signing keys in the database {target} were sealed under another keys/master.key (key {kid} does not \
         open): give every replica the same master.key, the one the keys were created with"
    )]
    WrongMasterKey { kid: String, target: String },
    #[error(
        "the database {target} holds signing keys sealed under a master key, but {path} does not exist: mount \
         the master.key every other replica uses at {path} (a new one would not open those keys, so none was \
         written)"
    )]
    MasterKeyMissing { path: PathBuf, target: String },
    #[error("a signing-key task failed: {0}")]
    Task(String),
    #[error("signing keys in the database {target}: {message}")]
    Database { target: String, message: String },
    /// The database does not answer (SPEC 12): a 503 where a request asked.
    #[error("signing keys in the database {target}: the database does not answer: {message}")]
    DatabaseUnavailable { target: String, message: String },
    #[error("no key {kid} in {path}; `tenure keys list` shows the keys")]
    UnknownKid { kid: String, path: PathBuf },
    #[error("key {kid} was already revoked at {at}")]
    AlreadyRevoked { kid: String, at: UnixTime },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io { path: path.to_path_buf(), source }
}

/// What a key signs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyRole {
    /// Every token (access, ID, logout), with `signing_alg`.
    #[default]
    Primary,
    /// RS256 ID tokens for the clients that ask for them while
    /// `signing_alg` is another algorithm (OIDC Core 15.1).
    Rs256Companion,
}

impl KeyRole {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyRole::Primary => "primary",
            KeyRole::Rs256Companion => "rs256_companion",
        }
    }
}

/// One entry of `keys.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub kid: String,
    pub alg: SigningAlg,
    pub created_at: UnixTime,
    #[serde(default)]
    pub role: KeyRole,
    /// When the key starts signing; absent in manifests written before
    /// publish-ahead, where it is `created_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_from: Option<UnixTime>,
    /// An explicit end of signing (manifests written before publish-ahead;
    /// a companion whose role ended). A later key of the same role ends it
    /// too, when it becomes active (see [`Manifest::retired_at`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<UnixTime>,
    /// Withdrawn at once by `tenure keys revoke`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<UnixTime>,
}

impl KeyRecord {
    /// When the key starts (or started) signing.
    pub fn active_from(&self) -> UnixTime {
        self.active_from.unwrap_or(self.created_at)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub keys: Vec<KeyRecord>,
}

/// Where a key stands at a given time (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// Published, signing from `active_from`.
    Next {
        active_from: UnixTime,
    },
    Active,
    /// Published until `published_until`, no longer signing.
    Retired {
        retired_at: UnixTime,
        published_until: UnixTime,
    },
    /// Every token it signed has expired; `prune` deletes it.
    Expired {
        retired_at: UnixTime,
    },
    Revoked {
        revoked_at: UnixTime,
    },
}

impl std::fmt::Display for KeyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyState::Next { active_from } => write!(f, "next: published, signs from {active_from}"),
            KeyState::Active => f.write_str("active"),
            KeyState::Retired { retired_at, published_until } => {
                write!(f, "retired {retired_at}, published until {published_until}")
            }
            KeyState::Expired { retired_at } => write!(f, "retired {retired_at}, expired (prune deletes it)"),
            KeyState::Revoked { revoked_at } => write!(f, "revoked {revoked_at}: not published, its tokens refused"),
        }
    }
}

impl Manifest {
    /// When key `i` stops signing: its explicit `retired_at` or the
    /// `active_from` of the first later unrevoked key of its role, whichever
    /// comes first. `None` while nothing is lined up to replace it.
    pub fn retired_at(&self, i: usize) -> Option<UnixTime> {
        let record = self.keys.get(i)?;
        let successor = self
            .keys
            .iter()
            .skip(i + 1)
            .filter(|k| k.role == record.role && k.revoked_at.is_none())
            .map(KeyRecord::active_from)
            .min();
        match (record.retired_at, successor) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The state of key `i` at `now`, with retired keys published for
    /// `retain` after their retirement.
    pub fn state(&self, i: usize, now: UnixTime, retain: Secs) -> Option<KeyState> {
        let record = self.keys.get(i)?;
        if let Some(revoked_at) = record.revoked_at {
            return Some(KeyState::Revoked { revoked_at });
        }
        Some(match self.retired_at(i) {
            Some(retired_at) if retired_at <= now => {
                let published_until = retired_at.plus(retain);
                if now < published_until {
                    KeyState::Retired { retired_at, published_until }
                } else {
                    KeyState::Expired { retired_at }
                }
            }
            _ if now < record.active_from() => KeyState::Next { active_from: record.active_from() },
            _ => KeyState::Active,
        })
    }

    /// Each key with its state at `now`, newest first.
    pub fn states(&self, now: UnixTime, retain: Secs) -> Vec<(KeyRecord, KeyState)> {
        let mut out: Vec<_> = (0..self.keys.len())
            .filter_map(|i| Some((self.keys.get(i)?.clone(), self.state(i, now, retain)?)))
            .collect();
        out.reverse();
        out
    }

    /// Whether a key of `role` signs at `now`.
    fn has_active(&self, role: KeyRole, now: UnixTime) -> bool {
        (0..self.keys.len())
            .any(|i| self.keys[i].role == role && self.state(i, now, Secs::ZERO) == Some(KeyState::Active))
    }

    /// Whether `role` has a key that nothing is lined up to replace.
    fn has_current(&self, role: KeyRole) -> bool {
        (0..self.keys.len())
            .any(|i| self.keys[i].role == role && self.keys[i].revoked_at.is_none() && self.retired_at(i).is_none())
    }
}

/// What a rotation created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// The new primary key.
    pub primary: KeyRecord,
    /// The new RS256 companion, when `signing_alg` is not RS256.
    pub companion: Option<KeyRecord>,
    /// When the new keys start signing; until then the previous ones do.
    pub active_from: UnixTime,
}

/// What a revocation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    pub revoked: KeyRecord,
    /// Whether the revoked key was signing at the time.
    pub was_active: bool,
    /// The key of the same role that signs from now on, when the revoked
    /// one was active: a published next key brought forward, or a new key.
    pub replacement: Option<KeyRecord>,
    /// Whether `replacement` was generated (it was not published before).
    pub generated: bool,
}

/// A private key ready to sign, with the verifier of its public half.
pub struct SigningKey {
    pub kid: String,
    pub alg: SigningAlg,
    pair: Pair,
    /// The public JWK (with `kid`, `alg`, `use`).
    pub jwk: serde_json::Value,
    /// josekit's verifier for this key: the algorithm comes from the key,
    /// never from a token header (RFC 8725 3.1).
    pub verifier: Box<dyn josekit::jws::JwsVerifier>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

enum Pair {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
    Rs256(RsaKeyPair),
}

impl SigningKey {
    /// Load from PKCS#8 DER.
    pub fn from_pkcs8(alg: SigningAlg, der: &[u8]) -> Result<SigningKey, String> {
        let rng = SystemRandom::new();
        let (pair, members) = match alg {
            SigningAlg::ES256 => {
                let kp = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
                    .map_err(|e| e.to_string())?;
                let point = kp.public_key().as_ref();
                // Uncompressed SEC1 point: 0x04 || X (32) || Y (32).
                if point.len() != 65 || point[0] != 4 {
                    return Err("unexpected P-256 public key encoding".into());
                }
                let members = serde_json::json!({
                    "crv": "P-256", "kty": "EC", "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..]),
                });
                (Pair::Es256(kp), members)
            }
            SigningAlg::EdDSA => {
                let kp = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|e| e.to_string())?;
                let members =
                    serde_json::json!({ "crv": "Ed25519", "kty": "OKP", "x": B64.encode(kp.public_key().as_ref()) });
                (Pair::EdDsa(kp), members)
            }
            SigningAlg::RS256 => {
                let kp = RsaKeyPair::from_pkcs8(der).map_err(|e| e.to_string())?;
                let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(kp.public());
                let members = serde_json::json!({ "e": B64.encode(&c.e), "kty": "RSA", "n": B64.encode(&c.n) });
                (Pair::Rs256(kp), members)
            }
        };
        let kid = thumbprint(&members);
        let mut jwk = members;
        if let Some(obj) = jwk.as_object_mut() {
            obj.insert("kid".into(), kid.clone().into());
            obj.insert("alg".into(), alg.as_str().into());
            obj.insert("use".into(), "sig".into());
        }
        let map = jwk.as_object().cloned().unwrap_or_default();
        let jose_jwk = josekit::jwk::Jwk::from_map(map).map_err(|e| e.to_string())?;
        let verifier: Box<dyn josekit::jws::JwsVerifier> = match alg {
            SigningAlg::ES256 => Box::new(josekit::jws::ES256.verifier_from_jwk(&jose_jwk).map_err(|e| e.to_string())?),
            SigningAlg::EdDSA => Box::new(josekit::jws::EdDSA.verifier_from_jwk(&jose_jwk).map_err(|e| e.to_string())?),
            SigningAlg::RS256 => Box::new(josekit::jws::RS256.verifier_from_jwk(&jose_jwk).map_err(|e| e.to_string())?),
        };
        Ok(SigningKey { kid, alg, pair, jwk, verifier })
    }

    /// Sign `message` (the JWS signing input) with this key's algorithm.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match &self.pair {
            Pair::Es256(kp) => {
                let mut sig = kp.sign(&rng, message).map(|s| s.as_ref().to_vec()).map_err(|_| KeyError::Sign)?;
                normalise_low_s(&mut sig);
                Ok(sig)
            }
            Pair::EdDsa(kp) => Ok(kp.sign(message).as_ref().to_vec()),
            Pair::Rs256(kp) => {
                let mut sig = vec![0; kp.public().modulus_len()];
                kp.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig).map_err(|_| KeyError::Sign)?;
                Ok(sig)
            }
        }
    }
}

/// The order n of the P-256 group (SEC 2 2.4.2), big-endian.
const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa,
    0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];
/// floor(n / 2): the largest canonical ("low") s.
const P256_HALF_N: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xde, 0x73, 0x7d,
    0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8,
];

/// Whether a JWS ES256 signature (`r || s`, 32 bytes each) has a canonical
/// s <= n/2. (r, n - s) is as valid as (r, s); accepting only the low one
/// leaves a token a single valid signature (no malleability).
pub fn es256_is_low_s(sig: &[u8]) -> bool {
    sig.len() == 64 && sig[32..] <= P256_HALF_N[..]
}

/// Replace a high s by n - s (ring signs with either).
fn normalise_low_s(sig: &mut [u8]) {
    if sig.len() != 64 || es256_is_low_s(sig) {
        return;
    }
    let mut borrow = 0u16;
    for i in (0..32).rev() {
        let (n, s) = (u16::from(P256_N[i]), u16::from(sig[32 + i]) + borrow);
        let (digit, next) = if n >= s { (n - s, 0) } else { (n + 256 - s, 1) };
        sig[32 + i] = digit as u8;
        borrow = next;
    }
}

/// RFC 7638: SHA-256 over the required members in lexicographic order,
/// without whitespace. `members` must hold exactly the required members;
/// `serde_json` objects are sorted maps, so serialization is canonical.
pub fn thumbprint(members: &serde_json::Value) -> String {
    let canonical = members.to_string();
    B64.encode(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()))
}

/// Generate a fresh private key as PKCS#8 DER.
pub fn generate_pkcs8(alg: SigningAlg) -> Result<Vec<u8>, KeyError> {
    let rng = SystemRandom::new();
    let fail = |message: String| KeyError::Generate { alg, message };
    match alg {
        SigningAlg::ES256 => EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map(|d| d.as_ref().to_vec())
            .map_err(|e| fail(e.to_string())),
        SigningAlg::EdDSA => {
            Ed25519KeyPair::generate_pkcs8(&rng).map(|d| d.as_ref().to_vec()).map_err(|e| fail(e.to_string()))
        }
        // ring cannot generate RSA keys; josekit (OpenSSL) can.
        SigningAlg::RS256 => {
            use josekit::jwk::KeyPair as _;
            use josekit::jwk::alg::rsa::RsaKeyPair as JoseRsa;
            JoseRsa::generate(2048).map(|kp| kp.to_der_private_key()).map_err(|e| fail(e.to_string()))
        }
    }
}

/// Where the manifest and the private keys live: the key directory
/// ([`KeyDir`], sled) or a snapshot of the database's `signing_keys` table
/// (PostgreSQL, see `store::postgres::keys`). Rotation, first-start
/// creation, revocation, pruning and loading are the same code over either
/// (the functions of this module taking a `Vault`).
pub trait Vault {
    /// Where the manifest is, for messages.
    fn manifest_place(&self) -> PathBuf;
    /// Where the private key `kid` is, for messages.
    fn key_place(&self, kid: &str) -> PathBuf;
    fn read_manifest(&self) -> Result<Manifest, KeyError>;
    fn write_manifest(&self, manifest: &Manifest) -> Result<(), KeyError>;
    /// Ready the place for new keys (the directory, mode 0700).
    fn prepare(&self) -> Result<(), KeyError> {
        Ok(())
    }
    /// Store the private key `kid` (PKCS#8 DER).
    fn put_private(&self, kid: &str, der: &[u8]) -> Result<(), KeyError>;
    fn has_private(&self, kid: &str) -> bool;
    /// The private key `kid` (PKCS#8 DER), or why it cannot be had.
    fn private(&self, kid: &str) -> Result<Vec<u8>, String>;
    /// Delete the private key `kid`; nothing when it is gone already.
    fn remove_private(&self, kid: &str) -> Result<(), KeyError>;
}

/// Generate a key and store its private half (the manifest is the caller's
/// to write).
fn generate<V: Vault + ?Sized>(
    vault: &V,
    alg: SigningAlg,
    role: KeyRole,
    now: UnixTime,
    active_from: UnixTime,
) -> Result<KeyRecord, KeyError> {
    let der = generate_pkcs8(alg)?;
    let key = SigningKey::from_pkcs8(alg, &der).map_err(|message| KeyError::Generate { alg, message })?;
    vault.put_private(&key.kid, &der)?;
    Ok(KeyRecord {
        kid: key.kid,
        alg,
        created_at: now,
        role,
        active_from: Some(active_from),
        retired_at: None,
        revoked_at: None,
    })
}

/// Generate a primary key of `alg` (and an RS256 companion unless `alg` is
/// RS256), publish them at once and let them sign from `now +
/// publish_ahead`; the keys they replace sign until then. (With no key
/// signing yet there is nothing to wait for: the new key signs at once.)
/// Called by `tenure keys rotate`, by a start that changes `signing_alg`,
/// and by the admin API (running servers reload within 2 s).
pub fn rotate<V: Vault + ?Sized>(
    vault: &V,
    alg: SigningAlg,
    now: UnixTime,
    publish_ahead: Secs,
) -> Result<Rotation, KeyError> {
    vault.prepare()?;
    let mut manifest = vault.read_manifest()?;
    let active_from = if manifest.has_active(KeyRole::Primary, now) { now.plus(publish_ahead) } else { now };
    let primary = generate(vault, alg, KeyRole::Primary, now, active_from)?;
    manifest.keys.push(primary.clone());
    let companion = if alg == SigningAlg::RS256 {
        // The primary key signs RS256 ID tokens once it is active.
        for k in manifest.keys.iter_mut().filter(|k| k.role == KeyRole::Rs256Companion && k.revoked_at.is_none()) {
            k.retired_at = Some(k.retired_at.map_or(active_from, |r| r.min(active_from)));
        }
        None
    } else {
        let c = generate(vault, SigningAlg::RS256, KeyRole::Rs256Companion, now, active_from)?;
        manifest.keys.push(c.clone());
        Some(c)
    };
    vault.write_manifest(&manifest)?;
    Ok(Rotation { primary, companion, active_from })
}

/// Make sure keys for `alg` exist: on a first start generate them, signing
/// at once; when the configured algorithm changed, rotate with
/// `publish_ahead`; add an RS256 companion, signing at once, to a manifest
/// written before companions existed. Returns the keys generated.
pub fn ensure_active<V: Vault + ?Sized>(
    vault: &V,
    alg: SigningAlg,
    now: UnixTime,
    publish_ahead: Secs,
) -> Result<Vec<KeyRecord>, KeyError> {
    let manifest = vault.read_manifest()?;
    let current = (0..manifest.keys.len())
        .rev()
        .find(|&i| {
            let k = &manifest.keys[i];
            k.role == KeyRole::Primary && k.revoked_at.is_none() && manifest.retired_at(i).is_none()
        })
        .map(|i| &manifest.keys[i]);
    let rotation = match current {
        None => Some(rotate(vault, alg, now, Secs::ZERO)?),
        Some(k) if !vault.has_private(&k.kid) => Some(rotate(vault, alg, now, Secs::ZERO)?),
        Some(k) if k.alg != alg => Some(rotate(vault, alg, now, publish_ahead)?),
        Some(_) => None,
    };
    if let Some(r) = rotation {
        return Ok(std::iter::once(r.primary).chain(r.companion).collect());
    }
    if alg != SigningAlg::RS256 && !manifest.has_current(KeyRole::Rs256Companion) {
        vault.prepare()?;
        let mut manifest = manifest;
        let companion = generate(vault, SigningAlg::RS256, KeyRole::Rs256Companion, now, now)?;
        manifest.keys.push(companion.clone());
        vault.write_manifest(&manifest)?;
        return Ok(vec![companion]);
    }
    Ok(Vec::new())
}

/// Withdraw key `kid` at once (compromise): it leaves the JWKS, the tokens
/// it signed are refused, its private key is deleted. When it was signing,
/// a key of the same role signs from `now` on, without waiting for the
/// publish-ahead period: the next key already published, or a new key of
/// the same algorithm.
pub fn revoke<V: Vault + ?Sized>(vault: &V, kid: &str, now: UnixTime) -> Result<Revocation, KeyError> {
    let mut manifest = vault.read_manifest()?;
    let unknown = || KeyError::UnknownKid { kid: kid.to_owned(), path: vault.manifest_place() };
    let i = manifest.keys.iter().position(|k| k.kid == kid).ok_or_else(unknown)?;
    let record = manifest.keys.get(i).cloned().ok_or_else(unknown)?;
    if let Some(at) = record.revoked_at {
        return Err(KeyError::AlreadyRevoked { kid: kid.to_owned(), at });
    }
    let was_active = manifest.state(i, now, Secs::ZERO) == Some(KeyState::Active);
    if let Some(k) = manifest.keys.get_mut(i) {
        k.revoked_at = Some(now);
    }
    let mut replacement = None;
    let mut generated = false;
    // A signing key is replaced at once; so is the last primary key.
    if was_active || (record.role == KeyRole::Primary && !manifest.has_current(KeyRole::Primary)) {
        let next = manifest
            .keys
            .iter_mut()
            .filter(|k| k.role == record.role && k.revoked_at.is_none() && now < k.active_from())
            .min_by_key(|k| k.active_from());
        if let Some(next) = next {
            next.active_from = Some(now);
            replacement = Some(next.clone());
        } else {
            let fresh = generate(vault, record.alg, record.role, now, now)?;
            manifest.keys.push(fresh.clone());
            replacement = Some(fresh);
            generated = true;
        }
    }
    vault.write_manifest(&manifest)?;
    vault.remove_private(kid)?;
    let revoked = manifest.keys.get(i).cloned().unwrap_or(record);
    Ok(Revocation { revoked, was_active, replacement, generated })
}

/// Delete expired keys (retired more than `retain` ago) and revoked ones
/// (revoked more than `retain` ago; listed until then). Returns the kids
/// deleted.
pub fn prune<V: Vault + ?Sized>(vault: &V, now: UnixTime, retain: Secs) -> Result<Vec<String>, KeyError> {
    let manifest = vault.read_manifest()?;
    let gone: Vec<bool> = (0..manifest.keys.len())
        .map(|i| match manifest.state(i, now, retain) {
            Some(KeyState::Expired { .. }) => true,
            Some(KeyState::Revoked { revoked_at }) => revoked_at.plus(retain) <= now,
            _ => false,
        })
        .collect();
    if !gone.contains(&true) {
        return Ok(Vec::new());
    }
    let (deleted, kept): (Vec<_>, Vec<_>) = manifest.keys.into_iter().zip(gone).partition(|(_, gone)| *gone);
    vault.write_manifest(&Manifest { keys: kept.into_iter().map(|(k, _)| k).collect() })?;
    for (k, _) in &deleted {
        vault.remove_private(&k.kid)?;
    }
    Ok(deleted.into_iter().map(|(k, _)| k.kid).collect())
}

/// Load every unrevoked key of the manifest into a [`KeySet`].
pub fn load<V: Vault + ?Sized>(vault: &V) -> Result<KeySet, KeyError> {
    let manifest = vault.read_manifest()?;
    let mut entries = Vec::with_capacity(manifest.keys.len());
    for (i, record) in manifest.keys.iter().enumerate() {
        if record.revoked_at.is_some() {
            continue;
        }
        let fail =
            |message: String| KeyError::Load { kid: record.kid.clone(), path: vault.key_place(&record.kid), message };
        let der = vault.private(&record.kid).map_err(fail)?;
        let key = SigningKey::from_pkcs8(record.alg, &der).map_err(fail)?;
        if key.kid != record.kid {
            return Err(fail(format!("its thumbprint is {}, not the kid the manifest names", key.kid)));
        }
        entries.push(Entry {
            role: record.role,
            active_from: record.active_from(),
            retired_at: manifest.retired_at(i),
            key,
        });
    }
    let fallback = entries
        .iter()
        .rposition(|e| e.role == KeyRole::Primary && e.retired_at.is_none())
        .ok_or_else(|| KeyError::Manifest { path: vault.manifest_place(), message: "no active key".into() })?;
    Ok(KeySet { entries, fallback })
}

/// The key directory on disk.
#[derive(Clone, Debug)]
pub struct KeyDir {
    dir: PathBuf,
}

impl KeyDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        KeyDir { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join(MANIFEST)
    }

    fn key_path(&self, kid: &str) -> PathBuf {
        self.dir.join(format!("{kid}.pem"))
    }

    pub fn read_manifest(&self) -> Result<Manifest, KeyError> {
        let path = self.manifest_path();
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| KeyError::Manifest { path, message: e.to_string() })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::default()),
            Err(e) => Err(KeyError::Io { path, source: e }),
        }
    }

    /// Write the manifest atomically (temp file, fsync, rename, fsync dir).
    fn write_manifest(&self, manifest: &Manifest) -> Result<(), KeyError> {
        let path = self.manifest_path();
        let tmp = self.dir.join(format!("{MANIFEST}.tmp"));
        let bytes = serde_json::to_vec_pretty(manifest)
            .map_err(|e| KeyError::Manifest { path: path.clone(), message: e.to_string() })?;
        write_private(&tmp, &bytes)?;
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        fs::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io_err(&self.dir))
    }

    fn ensure_dir(&self) -> Result<(), KeyError> {
        fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700)).map_err(io_err(&self.dir))
    }

    /// See [`rotate`].
    pub fn rotate(&self, alg: SigningAlg, now: UnixTime, publish_ahead: Secs) -> Result<Rotation, KeyError> {
        rotate(self, alg, now, publish_ahead)
    }

    /// See [`ensure_active`].
    pub fn ensure_active(
        &self,
        alg: SigningAlg,
        now: UnixTime,
        publish_ahead: Secs,
    ) -> Result<Vec<KeyRecord>, KeyError> {
        ensure_active(self, alg, now, publish_ahead)
    }

    /// See [`revoke`].
    pub fn revoke(&self, kid: &str, now: UnixTime) -> Result<Revocation, KeyError> {
        revoke(self, kid, now)
    }

    /// See [`prune`].
    pub fn prune(&self, now: UnixTime, retain: Secs) -> Result<Vec<String>, KeyError> {
        prune(self, now, retain)
    }

    /// See [`load`].
    pub fn load(&self) -> Result<KeySet, KeyError> {
        load(self)
    }
}

impl Vault for KeyDir {
    fn manifest_place(&self) -> PathBuf {
        self.manifest_path()
    }
    fn key_place(&self, kid: &str) -> PathBuf {
        self.key_path(kid)
    }
    fn read_manifest(&self) -> Result<Manifest, KeyError> {
        KeyDir::read_manifest(self)
    }
    fn write_manifest(&self, manifest: &Manifest) -> Result<(), KeyError> {
        KeyDir::write_manifest(self, manifest)
    }
    fn prepare(&self) -> Result<(), KeyError> {
        self.ensure_dir()
    }
    fn put_private(&self, kid: &str, der: &[u8]) -> Result<(), KeyError> {
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.to_vec()));
        write_private(&self.key_path(kid), pem.as_bytes())
    }
    fn has_private(&self, kid: &str) -> bool {
        self.key_path(kid).exists()
    }
    fn private(&self, kid: &str) -> Result<Vec<u8>, String> {
        let text = fs::read_to_string(self.key_path(kid)).map_err(|e| e.to_string())?;
        Ok(pem::parse(text).map_err(|e| e.to_string())?.into_contents())
    }
    fn remove_private(&self, kid: &str) -> Result<(), KeyError> {
        remove_if_present(&self.key_path(kid))
    }
}

fn remove_if_present(path: &Path) -> Result<(), KeyError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(KeyError::Io { path: path.to_path_buf(), source: e }),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    let mut f =
        fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).map_err(io_err(path))?;
    // The mode above applies only to new files; make sure of it.
    f.set_permissions(fs::Permissions::from_mode(0o600)).map_err(io_err(path))?;
    f.write_all(bytes).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

#[derive(Debug)]
struct Entry {
    role: KeyRole,
    active_from: UnixTime,
    /// Derived at load ([`Manifest::retired_at`]).
    retired_at: Option<UnixTime>,
    key: SigningKey,
}

impl Entry {
    fn signs_at(&self, now: UnixTime) -> bool {
        self.active_from <= now && self.retired_at.is_none_or(|r| now < r)
    }
    fn published_at(&self, now: UnixTime, retain: Secs) -> bool {
        self.retired_at.is_none_or(|r| now < r.plus(retain))
    }
}

/// The loaded keys: at any time one primary key signs (and an RS256
/// companion signs RS256 ID tokens), all published ones verify.
#[derive(Debug)]
pub struct KeySet {
    entries: Vec<Entry>,
    /// The newest primary key nothing replaces: signs when no primary key
    /// is active by the clock (a clock set back before every activation).
    fallback: usize,
}

impl KeySet {
    /// The primary key signing at `now`: access, logout and, by default,
    /// ID tokens.
    pub fn active(&self, now: UnixTime) -> &SigningKey {
        self.signing(KeyRole::Primary, now).unwrap_or_else(|| self.fallback_key())
    }

    fn fallback_key(&self) -> &SigningKey {
        // `load` sets `fallback` to the index of a primary entry.
        &self.entries[self.fallback].key
    }

    fn signing(&self, role: KeyRole, now: UnixTime) -> Option<&SigningKey> {
        self.entries.iter().rev().find(|e| e.role == role && e.signs_at(now)).map(|e| &e.key)
    }

    /// The key that signs an ID token at `now` for a client that asked for
    /// `alg` (`id_token_signed_response_alg`; `None`: the primary key's).
    /// RS256 comes from the companion when the primary key is not RS256.
    /// While `signing_alg` changes, a client asking for the new algorithm
    /// gets the new key (already published) before its turn as primary.
    pub fn id_token_key(&self, alg: Option<SigningAlg>, now: UnixTime) -> &SigningKey {
        let primary = self.active(now);
        let Some(alg) = alg else { return primary };
        if primary.alg == alg {
            return primary;
        }
        if alg == SigningAlg::RS256
            && let Some(companion) = self.signing(KeyRole::Rs256Companion, now)
        {
            return companion;
        }
        self.entries
            .iter()
            .rev()
            .find(|e| e.key.alg == alg && e.retired_at.is_none_or(|r| now < r))
            .map_or(primary, |e| &e.key)
    }

    /// Keys published at `now`: the next, active and retired ones whose
    /// tokens may still be alive.
    pub fn published(&self, now: UnixTime, retain: Secs) -> impl Iterator<Item = &SigningKey> {
        self.entries.iter().filter(move |e| e.published_at(now, retain)).map(|e| &e.key)
    }

    /// A published key by `kid`, for verification.
    pub fn find(&self, kid: &str, now: UnixTime, retain: Secs) -> Option<&SigningKey> {
        self.entries.iter().find(|e| e.key.kid == kid && e.published_at(now, retain)).map(|e| &e.key)
    }

    /// Whether `kid` is published at `now` (cheap: a few string compares).
    pub fn is_published(&self, kid: &str, now: UnixTime, retain: Secs) -> bool {
        self.find(kid, now, retain).is_some()
    }

    /// The JWKS document (RFC 7517 5): the active primary key first, for
    /// clients that take the first key, then the others newest first.
    pub fn jwks(&self, now: UnixTime, retain: Secs) -> serde_json::Value {
        let active = &self.active(now).kid;
        let mut keys: Vec<_> =
            self.published(now, retain).filter(|k| &k.kid != active).map(|k| k.jwk.clone()).collect();
        keys.reverse();
        keys.insert(0, self.active(now).jwk.clone());
        serde_json::json!({ "keys": keys })
    }
}

/// How long a retired key stays published: the longest lifetime of a token
/// it can have signed (access and ID tokens: the access-token TTL; logout
/// tokens: 2 minutes) plus clock-skew leeway.
pub fn retention(access_token_ttl: Secs) -> Secs {
    Secs::new(access_token_ttl.as_secs().max(120) + CLOCK_SKEW_LEEWAY.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: UnixTime = UnixTime(1_700_000_000);
    const AHEAD: Secs = Secs::minutes(10);
    const RETAIN: Secs = Secs::minutes(35);

    #[test]
    fn thumbprint_matches_rfc7638_example() {
        // RFC 7638 section 3.1.
        let members = serde_json::json!({
            "e": "AQAB", "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        });
        assert_eq!(thumbprint(&members), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn every_algorithm_generates_loads_and_signs() {
        for alg in [SigningAlg::ES256, SigningAlg::EdDSA, SigningAlg::RS256] {
            let der = generate_pkcs8(alg).expect("generate");
            let key = SigningKey::from_pkcs8(alg, &der).expect("load");
            let sig = key.sign(b"header.payload").expect("sign");
            let expected_len = match alg {
                SigningAlg::ES256 | SigningAlg::EdDSA => 64,
                SigningAlg::RS256 => 256,
            };
            assert_eq!(sig.len(), expected_len, "{alg}");
            assert_eq!(key.jwk["kid"], key.kid.as_str());
            assert_eq!(key.jwk["alg"], alg.as_str());
            assert!(key.jwk.get("d").is_none(), "no private member in the JWK");
        }
    }

    #[test]
    fn first_start_generates_private_key_files_that_sign_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = KeyDir::new(dir.path().join("keys"));
        let created = keys.ensure_active(SigningAlg::ES256, T0, AHEAD).expect("generate");
        assert_eq!(created.len(), 2, "the ES256 key and its RS256 companion");
        let (primary, companion) = (&created[0], &created[1]);
        assert_eq!((primary.alg, primary.role), (SigningAlg::ES256, KeyRole::Primary));
        assert_eq!((companion.alg, companion.role), (SigningAlg::RS256, KeyRole::Rs256Companion));
        assert_eq!(primary.active_from(), T0, "a first start uses its key at once, no publish-ahead");
        for k in &created {
            let mode = fs::metadata(keys.key_path(&k.kid)).expect("file").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert_eq!(fs::metadata(keys.path()).expect("dir").permissions().mode() & 0o777, 0o700);
        // A second start reuses them.
        assert_eq!(keys.ensure_active(SigningAlg::ES256, T0, AHEAD).expect("reload"), Vec::new());
        let set = keys.load().expect("load");
        assert_eq!(set.active(T0).kid, primary.kid);
        assert_eq!(set.id_token_key(None, T0).kid, primary.kid);
        assert_eq!(set.id_token_key(Some(SigningAlg::RS256), T0).kid, companion.kid);
        assert_eq!(set.id_token_key(Some(SigningAlg::ES256), T0).kid, primary.kid);
        assert_eq!(kids(&set, T0), vec![primary.kid.clone(), companion.kid.clone()], "both published, active first");
    }

    #[test]
    fn with_signing_alg_rs256_there_is_no_companion() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = KeyDir::new(dir.path());
        let created = keys.ensure_active(SigningAlg::RS256, T0, AHEAD).expect("generate");
        assert_eq!(created.len(), 1);
        let set = keys.load().expect("load");
        assert_eq!(set.id_token_key(Some(SigningAlg::RS256), T0).kid, created[0].kid);
    }

    fn kids(set: &KeySet, now: UnixTime) -> Vec<String> {
        set.jwks(now, RETAIN)["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    fn state_of(keys: &KeyDir, kid: &str, now: UnixTime) -> KeyState {
        let m = keys.read_manifest().expect("manifest");
        let i = m.keys.iter().position(|k| k.kid == kid).expect("listed");
        m.state(i, now, RETAIN).expect("state")
    }

    #[test]
    fn a_rotation_publishes_ahead_then_switches_then_retires_then_prunes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = KeyDir::new(dir.path());
        let first = keys.ensure_active(SigningAlg::ES256, T0, AHEAD).expect("gen");
        let (old, old_companion) = (first[0].kid.clone(), first[1].kid.clone());
        let t = T0.plus(Secs::days(1));
        let r = keys.rotate(SigningAlg::ES256, t, AHEAD).expect("rotate");
        assert_eq!(retention(Secs::minutes(30)), RETAIN, "access-token TTL + 5 min of clock skew");
        let new = r.primary.kid.clone();
        let new_companion = r.companion.as_ref().expect("a new companion").kid.clone();
        assert_eq!(r.active_from, t.plus(AHEAD));
        let set = keys.load().expect("load");

        // next: published at once, the old key still signs.
        assert_eq!(state_of(&keys, &new, t), KeyState::Next { active_from: t.plus(AHEAD) });
        assert_eq!(state_of(&keys, &old, t), KeyState::Active);
        let last_second = UnixTime(t.plus(AHEAD).as_secs() - 1);
        for now in [t, last_second] {
            assert_eq!(set.active(now).kid, old, "the previous key signs until the period has passed");
            assert_eq!(set.id_token_key(Some(SigningAlg::RS256), now).kid, old_companion);
            let published = kids(&set, now);
            assert_eq!(published[0], old, "the signing key is listed first");
            assert_eq!(published.len(), 4);
            assert!(published.contains(&new) && published.contains(&new_companion));
        }

        // active: the switch, the old key retired but published.
        let switch = t.plus(AHEAD);
        assert_eq!(set.active(switch).kid, new);
        assert_eq!(set.id_token_key(Some(SigningAlg::RS256), switch).kid, new_companion);
        assert_eq!(state_of(&keys, &new, switch), KeyState::Active);
        let until = switch.plus(RETAIN);
        assert_eq!(state_of(&keys, &old, switch), KeyState::Retired { retired_at: switch, published_until: until });
        assert!(set.find(&old, UnixTime(until.as_secs() - 1), RETAIN).is_some(), "old tokens still verify");
        assert_eq!(kids(&set, switch)[0], new);

        // expired: gone from the JWKS, then pruned.
        assert!(set.find(&old, until, RETAIN).is_none());
        assert_eq!(kids(&set, until), vec![new.clone(), new_companion.clone()]);
        assert_eq!(state_of(&keys, &old, until), KeyState::Expired { retired_at: switch });
        assert_eq!(keys.prune(UnixTime(until.as_secs() - 1), RETAIN).expect("prune"), Vec::<String>::new());
        let mut pruned = keys.prune(until, RETAIN).expect("prune");
        pruned.sort();
        let mut expected = vec![old.clone(), old_companion.clone()];
        expected.sort();
        assert_eq!(pruned, expected);
        assert!(!keys.key_path(&old).exists(), "the expired private key is deleted");
        assert_eq!(keys.load().expect("reload").published(until, RETAIN).count(), 2);
    }

    #[test]
    fn a_second_rotation_within_the_period_never_leaves_a_gap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = KeyDir::new(dir.path());
        let k1 = keys.ensure_active(SigningAlg::ES256, T0, AHEAD).expect("gen")[0].kid.clone();
        let t1 = T0.plus(Secs::hours(1));
        let k2 = keys.rotate(SigningAlg::ES256, t1, AHEAD).expect("rotate").primary.kid;
        let t2 = t1.plus(Secs::minutes(3));
        let k3 = keys.rotate(SigningAlg::ES256, t2, AHEAD).expect("rotate").primary.kid;
        let set = keys.load().expect("load");
        assert_eq!(set.active(t2).kid, k1);
        assert_eq!(set.active(t1.plus(AHEAD)).kid, k2);
        assert_eq!(set.active(t2.plus(AHEAD)).kid, k3);
    }

    #[test]
    fn changing_the_algorithm_publishes_the_new_key_ahead() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = KeyDir::new(dir.path());
        let first = keys.ensure_active(SigningAlg::ES256, T0, AHEAD).expect("gen");
        let t = T0.plus(Secs::new(10));
        let created = keys.ensure_active(SigningAlg::EdDSA, t, AHEAD).expect("gen");
        assert_eq!(created[0].alg, SigningAlg::EdDSA);
        assert_eq!(created[0].active_from(), t.plus(AHEAD));
        // A restart within the period does not rotate again.
        assert_eq!(keys.ensure_active(SigningAlg::EdDSA, t.plus(Secs::new(5)), AHEAD).expect("gen"), Vec::new());
        let set = keys.load().expect("load");
        assert_eq!(set.active(t).kid, first[0].kid, "ES256 signs until the EdDSA key is known");
        assert_eq!(set.id_token_key(Some(SigningAlg::EdDSA), t).kid, created[0].kid, "already published");
        assert_eq!(set.active(t.plus(AHEAD)).alg, SigningAlg::EdDSA);
        assert!(set.find(&first[0].kid, t.plus(AHEAD), Secs::hours(1)).is_some(), "the old key still verifies");

        // To RS256: the companion's role ends when the RS256 primary signs.
        let t3 = t.plus(Secs::days(1));
        let to_rs = keys.ensure_active(SigningAlg::RS256, t3, AHEAD).expect("gen");
        assert_eq!(to_rs.len(), 1, "no companion beside an RS256 primary");
        let set = keys.load().expect("load");
        let companion = set.id_token_key(Some(SigningAlg::RS256), t3).kid.clone();
        assert_ne!(companion, to_rs[0].kid, "the companion signs RS256 ID tokens until the switch");
        assert_eq!(set.id_token_key(Some(SigningAlg::RS256), t3.plus(AHEAD)).kid, to_rs[0].kid);
        assert!(matches!(state_of(&keys, &companion, t3.plus(AHEAD)), KeyState::Retired { .. }));
    }

    #[test]
    fn a_key_directory_from_before_companions_gains_one_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = KeyDir::new(dir.path());
        keys.ensure_dir().expect("dir");
        let der = generate_pkcs8(SigningAlg::ES256).expect("gen");
        let key = SigningKey::from_pkcs8(SigningAlg::ES256, &der).expect("load");
        write_private(&keys.key_path(&key.kid), pem::encode(&pem::Pem::new("PRIVATE KEY", der)).as_bytes())
            .expect("write");
        // The manifest format before publish-ahead: no role, no active_from.
        let legacy = format!(r#"{{"keys":[{{"kid":"{}","alg":"ES256","created_at":{}}}]}}"#, key.kid, T0.as_secs());
        fs::write(keys.manifest_path(), legacy).expect("write");
        let t = T0.plus(Secs::days(3));
        let created = keys.ensure_active(SigningAlg::ES256, t, AHEAD).expect("upgrade");
        assert_eq!(created.len(), 1);
        assert_eq!((created[0].role, created[0].active_from()), (KeyRole::Rs256Companion, t));
        let set = keys.load().expect("load");
        assert_eq!(set.active(t).kid, key.kid);
        assert_eq!(set.id_token_key(Some(SigningAlg::RS256), t).kid, created[0].kid);
    }

    #[test]
    fn revoking_the_active_key_brings_the_next_forward_or_makes_a_new_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = KeyDir::new(dir.path());
        let k1 = keys.ensure_active(SigningAlg::ES256, T0, AHEAD).expect("gen")[0].kid.clone();
        let t = T0.plus(Secs::hours(1));
        let k2 = keys.rotate(SigningAlg::ES256, t, AHEAD).expect("rotate").primary.kid;

        // Compromise beats publish-ahead: the published next key signs now.
        let now = t.plus(Secs::new(30));
        let r = keys.revoke(&k1, now).expect("revoke");
        assert!(r.was_active && !r.generated);
        assert_eq!(r.replacement.as_ref().map(|k| k.kid.clone()), Some(k2.clone()));
        assert!(!keys.key_path(&k1).exists(), "the compromised private key is deleted");
        let set = keys.load().expect("load");
        assert_eq!(set.active(now).kid, k2);
        assert!(set.find(&k1, now, RETAIN).is_none(), "out of the JWKS at once");
        assert!(!kids(&set, now).contains(&k1));
        assert_eq!(state_of(&keys, &k1, now), KeyState::Revoked { revoked_at: now });

        // No next key: a new one, signing at once.
        let later = now.plus(Secs::new(5));
        let r = keys.revoke(&k2, later).expect("revoke");
        assert!(r.was_active && r.generated);
        let k3 = r.replacement.expect("a replacement").kid;
        assert_eq!(keys.load().expect("load").active(later).kid, k3);
        assert!(matches!(keys.revoke(&k2, later), Err(KeyError::AlreadyRevoked { .. })));
        let unknown = keys.revoke("nope", later).expect_err("unknown").to_string();
        assert!(unknown.contains("no key nope"), "{unknown}");

        // Revoked keys are listed, then pruned after the retention period.
        assert_eq!(keys.prune(later, RETAIN).expect("prune"), Vec::<String>::new());
        let mut pruned = keys.prune(later.plus(RETAIN), RETAIN).expect("prune");
        pruned.sort();
        let mut expected = vec![k1, k2];
        expected.sort();
        assert_eq!(pruned, expected);
    }

    #[test]
    fn a_rotation_with_no_key_signing_yet_signs_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = KeyDir::new(dir.path());
        // `tenure keys rotate` before the first start: nothing to wait for.
        let r = keys.rotate(SigningAlg::ES256, T0, AHEAD).expect("rotate");
        assert_eq!(r.active_from, T0);
        assert_eq!(state_of(&keys, &r.primary.kid, T0), KeyState::Active);
        assert_eq!(keys.ensure_active(SigningAlg::ES256, T0, AHEAD).expect("start"), Vec::new());
        assert_eq!(keys.load().expect("load").active(T0).kid, r.primary.kid);
    }

    #[test]
    fn revoking_a_next_key_keeps_the_active_one_signing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = KeyDir::new(dir.path());
        let k1 = keys.ensure_active(SigningAlg::ES256, T0, AHEAD).expect("gen")[0].kid.clone();
        let r = keys.rotate(SigningAlg::ES256, T0, AHEAD).expect("rotate");
        let revoked = keys.revoke(&r.primary.kid, T0).expect("revoke");
        assert!(!revoked.was_active && revoked.replacement.is_none());
        let set = keys.load().expect("load");
        assert_eq!(set.active(T0.plus(AHEAD).plus(Secs::days(1))).kid, k1, "no successor: k1 never retires");
        assert_eq!(state_of(&keys, &k1, T0.plus(Secs::days(1))), KeyState::Active);
    }

    #[test]
    fn es256_signatures_are_low_s_and_high_s_is_recognised() {
        let der = generate_pkcs8(SigningAlg::ES256).expect("gen");
        let key = SigningKey::from_pkcs8(SigningAlg::ES256, &der).expect("load");
        for i in 0..200 {
            let sig = key.sign(format!("message {i}").as_bytes()).expect("sign");
            assert!(es256_is_low_s(&sig), "signature {i} is high-S");
            let mut flipped = sig.clone();
            // Force the high variant: s -> n - s.
            let mut borrow = 0u16;
            for j in (0..32).rev() {
                let (n, s) = (u16::from(P256_N[j]), u16::from(sig[32 + j]) + borrow);
                let (d, b) = if n >= s { (n - s, 0) } else { (n + 256 - s, 1) };
                flipped[32 + j] = d as u8;
                borrow = b;
            }
            assert!(!es256_is_low_s(&flipped), "n - s of a low s is high");
            let mut back = flipped.clone();
            normalise_low_s(&mut back);
            assert_eq!(back, sig, "normalising n - s gives s back");
        }
        assert!(es256_is_low_s(&[&[1u8; 32][..], &P256_HALF_N[..]].concat()), "n/2 is the largest low s");
        assert!(!es256_is_low_s(&[0u8; 63]), "wrong length");
    }

    #[test]
    fn a_tampered_key_file_is_refused_with_its_kid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = KeyDir::new(dir.path());
        let rec = keys.ensure_active(SigningAlg::ES256, T0, AHEAD).expect("gen").remove(0);
        let other = pem::encode(&pem::Pem::new("PRIVATE KEY", generate_pkcs8(SigningAlg::ES256).expect("gen")));
        fs::write(keys.key_path(&rec.kid), other).expect("write");
        let err = keys.load().expect_err("thumbprint mismatch").to_string();
        assert!(err.contains(&rec.kid) && err.contains("thumbprint"), "{err}");
    }
}
