//! The issuer's symmetric master key (`keys/master.key`, 32 random bytes,
//! mode 0600), generated on first start beside the signing keys.
//!
//! Subkeys are derived per purpose with HKDF-SHA256 (RFC 5869): the refresh
//! token MAC, the CSRF token MAC. The key never enters the store, so a copy
//! of the store alone yields no usable token.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

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
        let path = dir.join(FILE);
        let io = |source| KeyError::Io { path: path.clone(), source };
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir_all(dir).map_err(io)?;
                let mut fresh = [0u8; 32];
                SystemRandom::new().fill(&mut fresh).map_err(|_| KeyError::Generate {
                    alg: crate::config::SigningAlg::ES256,
                    message: "no randomness".into(),
                })?;
                let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(io)?;
                f.set_permissions(fs::Permissions::from_mode(0o600)).map_err(io)?;
                f.write_all(&fresh).map_err(io)?;
                f.sync_all().map_err(io)?;
                fresh.to_vec()
            }
            Err(e) => return Err(io(e)),
        };
        if bytes.len() != 32 {
            return Err(KeyError::Load {
                kid: FILE.into(),
                path: path.clone(),
                message: format!("must hold exactly 32 bytes, found {}", bytes.len()),
            });
        }
        Ok(MasterKey(hkdf::Salt::new(hkdf::HKDF_SHA256, b"tenure").extract(&bytes)))
    }

    /// A key for testing.
    pub fn from_bytes(bytes: &[u8; 32]) -> MasterKey {
        MasterKey(hkdf::Salt::new(hkdf::HKDF_SHA256, b"tenure").extract(bytes))
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
