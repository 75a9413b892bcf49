//! The issuer's symmetric master key (`keys/master.key`, 32 random bytes,
//! mode 0600), generated on first start beside the signing keys.
//!
//! Subkeys are derived per purpose with HKDF-SHA256 (RFC 5869): the refresh
//! token MAC, the CSRF token MAC, the DPoP nonce MAC, and the AES-256-GCM
//! key that seals the private signing keys kept in PostgreSQL
//! ([`SealingKey`]). The key never enters the store, so a copy of the store
//! alone yields no usable token and no private key.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use ring::aead;
use ring::hkdf;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use super::keys::KeyError;

pub const FILE: &str = "master.key";

pub struct MasterKey(hkdf::Prk);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// What a derived key is for; each purpose gets its own key.
#[derive(Clone, Copy, Debug)]
pub enum Purpose {
    RefreshToken,
    Csrf,
    /// Stateless DPoP nonces (RFC 9449 8).
    DpopNonce,
}

impl Purpose {
    fn info(self) -> &'static [u8] {
        match self {
            Purpose::RefreshToken => b"tenure refresh token v1",
            Purpose::Csrf => b"tenure csrf v1",
            Purpose::DpopNonce => b"tenure dpop nonce v1",
        }
    }
}

impl MasterKey {
    /// Load `dir/master.key`, creating it on first start.
    pub fn load_or_create(dir: &Path) -> Result<MasterKey, KeyError> {
        match MasterKey::load(dir)? {
            Some(key) => Ok(key),
            None => MasterKey::create(dir),
        }
    }

    /// Load `dir/master.key`; `None` when there is no such file.
    pub fn load(dir: &Path) -> Result<Option<MasterKey>, KeyError> {
        let path = dir.join(FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(KeyError::Io { path, source }),
        };
        if bytes.len() != 32 {
            return Err(KeyError::Load {
                kid: FILE.into(),
                path: path.clone(),
                message: format!("must hold exactly 32 bytes, found {}", bytes.len()),
            });
        }
        Ok(Some(MasterKey(hkdf::Salt::new(hkdf::HKDF_SHA256, b"tenure").extract(&bytes))))
    }

    /// Write a fresh random `dir/master.key` (0600, synced); never
    /// replaces one (`create_new`).
    pub fn create(dir: &Path) -> Result<MasterKey, KeyError> {
        let path = dir.join(FILE);
        let io = |source| KeyError::Io { path: path.clone(), source };
        fs::create_dir_all(dir).map_err(io)?;
        let mut fresh = [0u8; 32];
        SystemRandom::new().fill(&mut fresh).map_err(|_| KeyError::Generate {
            alg: crate::token::SigningAlg::ES256,
            message: "no randomness".into(),
        })?;
        let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(io)?;
        f.set_permissions(fs::Permissions::from_mode(0o600)).map_err(io)?;
        f.write_all(&fresh).map_err(io)?;
        f.sync_all().map_err(io)?;
        Ok(MasterKey(hkdf::Salt::new(hkdf::HKDF_SHA256, b"tenure").extract(&fresh)))
    }

    /// A key for testing.
    pub fn from_bytes(bytes: &[u8; 32]) -> MasterKey {
        MasterKey(hkdf::Salt::new(hkdf::HKDF_SHA256, b"tenure").extract(bytes))
    }

    /// The AES-256-GCM key that seals private signing keys stored in the
    /// database (HKDF info `tenure signing key seal v1`).
    pub fn sealing_key(&self) -> Result<SealingKey, KeyError> {
        let info = [SEAL_INFO];
        let okm = self.0.expand(&info, &aead::AES_256_GCM).map_err(|_| KeyError::Seal)?;
        Ok(SealingKey(aead::LessSafeKey::new(aead::UnboundKey::from(okm))))
    }

    /// The HMAC-SHA256 key for `purpose`.
    pub fn derive(&self, purpose: Purpose) -> hmac::Key {
        let info = [purpose.info()];
        // HKDF-Expand to 32 bytes cannot fail (limit is 255 * 32).
        match self.0.expand(&info, hmac::HMAC_SHA256) {
            Ok(okm) => hmac::Key::from(okm),
            Err(_) => hmac::Key::new(hmac::HMAC_SHA256, purpose.info()),
        }
    }
}

const SEAL_INFO: &[u8] = b"tenure signing key seal v1";

/// Seals a private signing key (PKCS#8 DER) for the database: AES-256-GCM
/// under a key derived from the master key, a random 96-bit nonce per
/// sealing, the key's `kid` as associated data (a sealed key moved to
/// another row does not open).
pub struct SealingKey(aead::LessSafeKey);

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(<redacted>)")
    }
}

/// A sealed private key: the nonce and the ciphertext with its tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    pub nonce: [u8; aead::NONCE_LEN],
    pub ciphertext: Vec<u8>,
}

impl SealingKey {
    pub fn seal(&self, kid: &str, plaintext: &[u8]) -> Result<Sealed, KeyError> {
        let mut nonce = [0u8; aead::NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(|_| KeyError::Seal)?;
        let mut ciphertext = plaintext.to_vec();
        self.0
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(kid.as_bytes()),
                &mut ciphertext,
            )
            .map_err(|_| KeyError::Seal)?;
        Ok(Sealed { nonce, ciphertext })
    }

    /// Open a sealed key; `None` when it does not open under this key with
    /// this `kid` (another master key, or altered bytes).
    pub fn open(&self, kid: &str, sealed: &Sealed) -> Option<Vec<u8>> {
        let mut buf = sealed.ciphertext.clone();
        let plain = self
            .0
            .open_in_place(aead::Nonce::assume_unique_for_key(sealed.nonce), aead::Aad::from(kid.as_bytes()), &mut buf)
            .ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealing(byte: u8) -> SealingKey {
        MasterKey::from_bytes(&[byte; 32]).sealing_key().expect("derive")
    }

    #[test]
    fn a_sealed_key_opens_under_the_same_master_key_and_kid() {
        let key = sealing(7);
        let sealed = key.seal("kid-1", b"private key der").expect("seal");
        assert_ne!(sealed.ciphertext[..15], b"private key der"[..], "the plaintext is not stored as is");
        assert_eq!(sealed.ciphertext.len(), 15 + aead::AES_256_GCM.tag_len());
        assert_eq!(key.open("kid-1", &sealed).as_deref(), Some(&b"private key der"[..]));
        // A fresh nonce per sealing.
        assert_ne!(key.seal("kid-1", b"private key der").expect("seal").nonce, sealed.nonce);
        // The same master key on another replica derives the same sealing key.
        assert_eq!(sealing(7).open("kid-1", &sealed).as_deref(), Some(&b"private key der"[..]));
    }

    #[test]
    fn another_master_key_does_not_open_a_sealed_key() {
        let sealed = sealing(7).seal("kid-1", b"private key der").expect("seal");
        assert_eq!(sealing(8).open("kid-1", &sealed), None);
    }

    #[test]
    fn altered_ciphertext_nonce_or_kid_is_refused() {
        let key = sealing(7);
        let sealed = key.seal("kid-1", b"private key der").expect("seal");
        let mut flipped = sealed.clone();
        flipped.ciphertext[3] ^= 1;
        assert_eq!(key.open("kid-1", &flipped), None, "a changed ciphertext byte");
        let mut tag = sealed.clone();
        if let Some(last) = tag.ciphertext.last_mut() {
            *last ^= 0x80;
        }
        assert_eq!(key.open("kid-1", &tag), None, "a changed tag");
        let mut nonce = sealed.clone();
        nonce.nonce[0] ^= 1;
        assert_eq!(key.open("kid-1", &nonce), None, "a changed nonce");
        assert_eq!(key.open("kid-2", &sealed), None, "moved to another key's row");
        let mut short = sealed;
        short.ciphertext.truncate(4);
        assert_eq!(key.open("kid-1", &short), None, "truncated");
    }
}
