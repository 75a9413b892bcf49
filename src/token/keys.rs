//! Signing keys: generation, the on-disk key directory, rotation, retirement
//! and the JWKS (SPEC 5; OIDC Core 10.1.1; RFC 7517, RFC 7638).
//!
//! `keys/` holds one PKCS#8 PEM file per key (`<kid>.pem`, mode 0600) and a
//! manifest `keys.json` listing each key's algorithm, creation time and, once
//! superseded, its retirement time. The newest unretired key signs. A retired
//! key stays in the JWKS until every token it can have signed has expired
//! (retirement time + the longest token lifetime + clock-skew leeway), after
//! which `prune` deletes it.
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

use crate::clock::UnixTime;
use crate::config::SigningAlg;
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
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io { path: path.to_path_buf(), source }
}

/// One entry of `keys.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub kid: String,
    pub alg: SigningAlg,
    pub created_at: UnixTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<UnixTime>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub keys: Vec<KeyRecord>,
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
            Pair::Es256(kp) => kp.sign(&rng, message).map(|s| s.as_ref().to_vec()).map_err(|_| KeyError::Sign),
            Pair::EdDsa(kp) => Ok(kp.sign(message).as_ref().to_vec()),
            Pair::Rs256(kp) => {
                let mut sig = vec![0; kp.public().modulus_len()];
                kp.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig).map_err(|_| KeyError::Sign)?;
                Ok(sig)
            }
        }
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

    /// Generate a key of `alg`, store it, and make it the active one; the
    /// previously active key is retired at `now`.
    pub fn rotate(&self, alg: SigningAlg, now: UnixTime) -> Result<KeyRecord, KeyError> {
        self.ensure_dir()?;
        let der = generate_pkcs8(alg)?;
        let key = SigningKey::from_pkcs8(alg, &der).map_err(|message| KeyError::Generate { alg, message })?;
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der));
        write_private(&self.key_path(&key.kid), pem.as_bytes())?;
        let mut manifest = self.read_manifest()?;
        for k in manifest.keys.iter_mut().filter(|k| k.retired_at.is_none()) {
            k.retired_at = Some(now);
        }
        let record = KeyRecord { kid: key.kid, alg, created_at: now, retired_at: None };
        manifest.keys.push(record.clone());
        self.write_manifest(&manifest)?;
        Ok(record)
    }

    /// Make sure an active key of `alg` exists: generate one on first start,
    /// or rotate when the configured algorithm changed. Returns whether a key
    /// was generated.
    pub fn ensure_active(&self, alg: SigningAlg, now: UnixTime) -> Result<Option<KeyRecord>, KeyError> {
        let manifest = self.read_manifest()?;
        match manifest.keys.iter().rev().find(|k| k.retired_at.is_none()) {
            Some(active) if active.alg == alg && self.key_path(&active.kid).exists() => Ok(None),
            _ => self.rotate(alg, now).map(Some),
        }
    }

    /// Delete retired keys whose publication window (`retain` after their
    /// retirement) has passed. Returns the kids deleted.
    pub fn prune(&self, now: UnixTime, retain: Secs) -> Result<Vec<String>, KeyError> {
        let mut manifest = self.read_manifest()?;
        let (gone, kept): (Vec<_>, Vec<_>) =
            manifest.keys.into_iter().partition(|k| k.retired_at.is_some_and(|r| r.plus(retain) <= now));
        if gone.is_empty() {
            return Ok(Vec::new());
        }
        manifest.keys = kept;
        self.write_manifest(&manifest)?;
        for k in &gone {
            let path = self.key_path(&k.kid);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(KeyError::Io { path, source: e }),
            }
        }
        Ok(gone.into_iter().map(|k| k.kid).collect())
    }

    /// Load every key of the manifest into a [`KeySet`].
    pub fn load(&self) -> Result<KeySet, KeyError> {
        let manifest = self.read_manifest()?;
        let mut keys = Vec::with_capacity(manifest.keys.len());
        for record in &manifest.keys {
            let path = self.key_path(&record.kid);
            let fail = |message: String| KeyError::Load { kid: record.kid.clone(), path: path.clone(), message };
            let text = fs::read_to_string(&path).map_err(|e| fail(e.to_string()))?;
            let parsed = pem::parse(text).map_err(|e| fail(e.to_string()))?;
            let key = SigningKey::from_pkcs8(record.alg, parsed.contents()).map_err(fail)?;
            if key.kid != record.kid {
                return Err(fail(format!("its thumbprint is {}, not the kid the manifest names", key.kid)));
            }
            keys.push((record.clone(), key));
        }
        if !keys.iter().any(|(r, _)| r.retired_at.is_none()) {
            return Err(KeyError::Manifest { path: self.manifest_path(), message: "no active key".into() });
        }
        Ok(KeySet { keys })
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

/// The loaded keys: the active one signs, all published ones verify.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<(KeyRecord, SigningKey)>,
}

impl KeySet {
    /// The newest unretired key.
    pub fn active(&self) -> &SigningKey {
        // `load` refuses a key set without an active key.
        #[allow(clippy::expect_used)]
        self.keys
            .iter()
            .rev()
            .find(|(r, _)| r.retired_at.is_none())
            .map(|(_, k)| k)
            .expect("KeySet::load guarantees an active key")
    }

    /// Keys still published at `now`: the active ones and the retired ones
    /// whose tokens may still be alive.
    pub fn published(&self, now: UnixTime, retain: Secs) -> impl Iterator<Item = &SigningKey> {
        self.keys.iter().filter(move |(r, _)| r.retired_at.is_none_or(|t| now < t.plus(retain))).map(|(_, k)| k)
    }

    /// A published key by `kid`, for verification.
    pub fn find(&self, kid: &str, now: UnixTime, retain: Secs) -> Option<&SigningKey> {
        self.published(now, retain).find(|k| k.kid == kid)
    }

    /// The JWKS document (RFC 7517 5).
    pub fn jwks(&self, now: UnixTime, retain: Secs) -> serde_json::Value {
        // Newest first, so clients that take the first key take the active one.
        let mut keys: Vec<_> = self.published(now, retain).map(|k| k.jwk.clone()).collect();
        keys.reverse();
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
    fn first_start_generates_a_private_key_file_and_reload_finds_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = KeyDir::new(dir.path().join("keys"));
        let created = keys.ensure_active(SigningAlg::ES256, T0).expect("generate").expect("a new key");
        let mode = fs::metadata(keys.key_path(&created.kid)).expect("file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(fs::metadata(keys.path()).expect("dir").permissions().mode() & 0o777, 0o700);
        // A second start reuses it.
        assert_eq!(keys.ensure_active(SigningAlg::ES256, T0).expect("reload"), None);
        let set = keys.load().expect("load");
        assert_eq!(set.active().kid, created.kid);
    }

    #[test]
    fn changing_the_algorithm_rotates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = KeyDir::new(dir.path());
        let first = keys.ensure_active(SigningAlg::ES256, T0).expect("gen").expect("new");
        let second = keys.ensure_active(SigningAlg::EdDSA, T0.plus(Secs::new(10))).expect("gen").expect("rotated");
        let set = keys.load().expect("load");
        assert_eq!(set.active().kid, second.kid);
        assert_eq!(set.active().alg, SigningAlg::EdDSA);
        assert!(set.find(&first.kid, T0.plus(Secs::new(10)), Secs::hours(1)).is_some(), "the old key still verifies");
    }

    #[test]
    fn rotation_publishes_both_until_the_old_tokens_expire_then_prune_retires() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = KeyDir::new(dir.path());
        let old = keys.ensure_active(SigningAlg::ES256, T0).expect("gen").expect("new");
        let rotated_at = T0.plus(Secs::days(1));
        let new = keys.rotate(SigningAlg::ES256, rotated_at).expect("rotate");
        let retain = retention(Secs::minutes(30));
        assert_eq!(retain, Secs::minutes(35));
        let set = keys.load().expect("load");
        assert_eq!(set.active().kid, new.kid);
        let kids = |now| -> Vec<String> {
            set.jwks(now, retain)["keys"]
                .as_array()
                .expect("keys")
                .iter()
                .map(|k| k["kid"].as_str().unwrap_or("").to_owned())
                .collect()
        };
        assert_eq!(kids(rotated_at), vec![new.kid.clone(), old.kid.clone()], "active first");
        let last_second = UnixTime(rotated_at.plus(retain).as_secs() - 1);
        assert_eq!(kids(last_second).len(), 2);
        assert_eq!(kids(rotated_at.plus(retain)), vec![new.kid.clone()]);

        assert_eq!(keys.prune(last_second, retain).expect("prune"), Vec::<String>::new());
        assert_eq!(keys.prune(rotated_at.plus(retain), retain).expect("prune"), vec![old.kid.clone()]);
        assert!(!keys.key_path(&old.kid).exists(), "the retired private key is deleted");
        let reloaded = keys.load().expect("reload");
        assert_eq!(reloaded.published(rotated_at, retain).count(), 1);
    }

    #[test]
    fn a_tampered_key_file_is_refused_with_its_kid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = KeyDir::new(dir.path());
        let rec = keys.ensure_active(SigningAlg::ES256, T0).expect("gen").expect("new");
        let other = pem::encode(&pem::Pem::new("PRIVATE KEY", generate_pkcs8(SigningAlg::ES256).expect("gen")));
        fs::write(keys.key_path(&rec.kid), other).expect("write");
        let err = keys.load().expect_err("thumbprint mismatch").to_string();
        assert!(err.contains(&rec.kid) && err.contains("thumbprint"), "{err}");
    }
}
