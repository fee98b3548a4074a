//! Sealed JIT configs: a provision command's JIT config encrypted to the receiving tenant.
//!
//! An X25519 sealed box (`crypto_box`, the libsodium `crypto_box_seal` construction): the
//! scheduler seals with the tenant's public key and an ephemeral key of its own, and only the
//! holder of the tenant's private key (its agent) can open it. The central cluster, which
//! makes the JIT config, keeps nothing that opens it again; every other reader of the stream
//! sees ciphertext. Keys and ciphertext travel as standard base64 text.
//!
//! Pure computation, no I/O besides the operating system's random source.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use crypto_box::aead::OsRng;
use serde::{Deserialize, Serialize};

use crate::Secret;

/// Why a key could not be read, or a sealed secret not made or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The text is not base64 of a 32-byte X25519 key.
    #[error("not a JIT key: expected base64 of 32 bytes")]
    BadKey,
    /// The ciphertext is not valid base64.
    #[error("sealed JIT config is not base64")]
    BadEncoding(#[source] base64::DecodeError),
    /// Sealing failed (the random source).
    #[error("could not seal the JIT config")]
    Seal,
    /// The box does not open with this key: sealed to another tenant, or tampered with.
    #[error("the sealed JIT config does not open with this tenant's key")]
    Open,
    /// It opened but is not UTF-8 text.
    #[error("the sealed JIT config is not text")]
    NotText,
}

/// A tenant's public key (`[tenants.<t>] jit_public_key`). Not secret.
#[derive(Clone, PartialEq, Eq)]
pub struct JitPublicKey(crypto_box::PublicKey);

/// A tenant's private key; `Debug` never shows it.
#[derive(Clone)]
pub struct JitPrivateKey(crypto_box::SecretKey);

/// A [`Secret`] sealed to one tenant's public key, as base64.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct SealedSecret(String);

fn key_bytes(text: &str) -> Result<[u8; crypto_box::KEY_SIZE], SealError> {
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|_| SealError::BadKey)?;
    bytes.try_into().map_err(|_| SealError::BadKey)
}

impl JitPublicKey {
    /// Reads a key from its base64 text.
    pub fn parse(text: &str) -> Result<Self, SealError> {
        Ok(Self(crypto_box::PublicKey::from(key_bytes(text)?)))
    }

    /// Seals `secret` so that only the matching private key opens it.
    pub fn seal(&self, secret: &Secret) -> Result<SealedSecret, SealError> {
        let sealed = self
            .0
            .seal(&mut OsRng, secret.expose().as_bytes())
            .map_err(|_| SealError::Seal)?;
        Ok(SealedSecret(STANDARD.encode(sealed)))
    }
}

impl std::fmt::Display for JitPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&STANDARD.encode(self.0.as_bytes()))
    }
}

impl std::fmt::Debug for JitPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JitPublicKey({self})")
    }
}

impl JitPrivateKey {
    /// A new random key pair.
    pub fn generate() -> Self {
        Self(crypto_box::SecretKey::generate(&mut OsRng))
    }

    /// Reads a key from its base64 text (the content of the key file).
    pub fn parse(text: &str) -> Result<Self, SealError> {
        Ok(Self(crypto_box::SecretKey::from(key_bytes(text)?)))
    }

    /// The key as base64 text, for writing to the key file. Never log what this returns.
    pub fn expose_base64(&self) -> String {
        STANDARD.encode(self.0.to_bytes())
    }

    /// The matching public key.
    pub fn public_key(&self) -> JitPublicKey {
        JitPublicKey(self.0.public_key())
    }

    /// Opens a secret sealed to this key's public key.
    pub fn open(&self, sealed: &SealedSecret) -> Result<Secret, SealError> {
        let bytes = STANDARD
            .decode(sealed.0.as_bytes())
            .map_err(SealError::BadEncoding)?;
        let plain = self.0.unseal(&bytes).map_err(|_| SealError::Open)?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| SealError::NotText)
    }
}

impl std::fmt::Debug for JitPrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JitPrivateKey(public {})", self.public_key())
    }
}

impl SealedSecret {
    /// Wraps base64 ciphertext (tests and golden files).
    pub fn from_base64(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The base64 ciphertext.
    pub fn as_base64(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedSecret({} base64 chars)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

    use super::*;

    #[test]
    fn only_the_receiving_tenant_opens_its_sealed_jit_config() {
        let (a, b) = (JitPrivateKey::generate(), JitPrivateKey::generate());
        let jit = Secret::new("eyJqaXQiOiJhY21lIn0=");
        let sealed = a.public_key().seal(&jit).unwrap();
        assert!(!sealed.as_base64().contains("eyJqaXQi"), "ciphertext only");
        assert_eq!(a.open(&sealed).unwrap(), jit);
        assert!(matches!(b.open(&sealed), Err(SealError::Open)));
        // Sealing twice gives different boxes (a fresh ephemeral key each time).
        assert_ne!(a.public_key().seal(&jit).unwrap(), sealed);
    }

    #[test]
    fn a_tampered_box_does_not_open() {
        let a = JitPrivateKey::generate();
        let sealed = a.public_key().seal(&Secret::new("jit")).unwrap();
        let mut bytes = STANDARD.decode(sealed.as_base64()).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = SealedSecret::from_base64(STANDARD.encode(bytes));
        assert!(matches!(a.open(&tampered), Err(SealError::Open)));
        let junk = SealedSecret::from_base64("not base64!");
        assert!(matches!(a.open(&junk), Err(SealError::BadEncoding(_))));
    }

    #[test]
    fn keys_round_trip_through_text_and_debug_hides_the_private_key() {
        let key = JitPrivateKey::generate();
        let text = key.expose_base64();
        let back = JitPrivateKey::parse(&text).unwrap();
        assert_eq!(back.public_key(), key.public_key());
        let public = JitPublicKey::parse(&key.public_key().to_string()).unwrap();
        assert_eq!(public, key.public_key());
        assert!(!format!("{key:?}").contains(&text));
        assert!(matches!(
            JitPublicKey::parse("c2hvcnQ="),
            Err(SealError::BadKey)
        ));
        assert!(matches!(JitPublicKey::parse("%%%"), Err(SealError::BadKey)));
    }
}
