//! P-256 keys and ECDSA signatures in the one wire format: 65-byte uncompressed SEC1 public
//! keys and 64-byte fixed (`r || s`) signatures. Platform formats (SPKI DER from Android
//! Keystore, X9.62 DER signatures from both platforms) are normalized here with `p256`;
//! signing and verification use `ring`.
use std::fmt;

use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::DecodePublicKey;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, UnparsedPublicKey};

use crate::encoding::{b64, sha256, unb64};
use crate::ProtocolError;

/// A P-256 public key, held as its 65-byte uncompressed SEC1 encoding.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 65]);

impl PublicKey {
    /// Accepts uncompressed or compressed SEC1, or an X.509 SubjectPublicKeyInfo DER.
    pub fn from_platform_bytes(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let key = p256::PublicKey::from_sec1_bytes(bytes)
            .or_else(|_| p256::PublicKey::from_public_key_der(bytes))
            .map_err(|_| ProtocolError::InvalidPublicKey)?;
        Self::from_sec1(key.to_encoded_point(false).as_bytes())
    }

    /// Accepts only the wire format: 65-byte uncompressed SEC1 of a point on the curve.
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let arr: [u8; 65] = bytes
            .try_into()
            .map_err(|_| ProtocolError::InvalidPublicKey)?;
        if arr[0] != 0x04 || p256::PublicKey::from_sec1_bytes(&arr).is_err() {
            return Err(ProtocolError::InvalidPublicKey);
        }
        Ok(PublicKey(arr))
    }

    pub fn from_b64(field: &'static str, text: &str) -> Result<Self, ProtocolError> {
        Self::from_sec1(&unb64(field, text)?)
    }

    pub fn as_bytes(&self) -> &[u8; 65] {
        &self.0
    }

    pub fn to_b64(&self) -> String {
        b64(&self.0)
    }

    /// `base64url(SHA-256(SEC1 bytes))`: what an enrollment URL pins.
    pub fn fingerprint(&self) -> String {
        b64(&sha256(&self.0))
    }

    /// Checks `signature` over exactly `message`.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), ProtocolError> {
        UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &self.0[..])
            .verify(message, &signature.fixed)
            .map_err(|_| ProtocolError::BadSignature)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey(fp={})", &self.fingerprint()[..8])
    }
}

/// An ECDSA P-256/SHA-256 signature, held as 64 fixed bytes `r || s`.
#[derive(Clone, PartialEq, Eq)]
pub struct Signature {
    fixed: [u8; 64],
    /// The same signature parsed: `r` and `s` are valid scalars, checked when it was made.
    parsed: p256::ecdsa::Signature,
}

impl Signature {
    /// Accepts the fixed 64-byte form or an X.9.62 / ASN.1 DER `SEQUENCE { r, s }`.
    pub fn from_platform_bytes(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let sig = if bytes.len() == 64 {
            p256::ecdsa::Signature::from_slice(bytes)
        } else {
            p256::ecdsa::Signature::from_der(bytes)
        }
        .map_err(|_| ProtocolError::InvalidSignatureEncoding)?;
        Ok(Signature {
            fixed: sig.to_bytes().into(),
            parsed: sig,
        })
    }

    /// Accepts only the wire format (64 bytes).
    pub fn from_b64(field: &'static str, text: &str) -> Result<Self, ProtocolError> {
        let bytes = unb64(field, text)?;
        if bytes.len() != 64 {
            return Err(ProtocolError::InvalidLength {
                field,
                expected: 64,
                actual: bytes.len(),
            });
        }
        Self::from_platform_bytes(&bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.fixed
    }

    pub fn to_b64(&self) -> String {
        b64(&self.fixed)
    }

    /// The X9.62 DER form, as Android and iOS produce it.
    pub fn to_der(&self) -> Vec<u8> {
        self.parsed.to_der().as_bytes().to_vec()
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signature(..)")
    }
}

/// A P-256 signing key held in memory (`ring`). The server's key and the desktop software key
/// store use it; phones use hardware keys instead.
pub struct EcdsaSigner {
    pair: EcdsaKeyPair,
    /// The pair's public key in the wire format, checked once when the key is loaded.
    public: PublicKey,
    rng: SystemRandom,
}

impl EcdsaSigner {
    /// A fresh key and its PKCS#8 v1 document (to be stored encrypted or in the server's DB).
    pub fn generate() -> Result<(Self, Vec<u8>), ProtocolError> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| ProtocolError::KeyGeneration("random source failed"))?;
        let pkcs8 = doc.as_ref().to_vec();
        Ok((Self::from_pkcs8(&pkcs8)?, pkcs8))
    }

    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, ProtocolError> {
        let rng = SystemRandom::new();
        let pair =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
                .map_err(|_| ProtocolError::KeyGeneration("not a P-256 PKCS#8 key"))?;
        let public = PublicKey::from_sec1(pair.public_key().as_ref())
            .map_err(|_| ProtocolError::KeyGeneration("not an uncompressed P-256 public key"))?;
        Ok(EcdsaSigner { pair, public, rng })
    }

    pub fn public_key(&self) -> PublicKey {
        self.public.clone()
    }

    /// Signs `message`: a fixed 64-byte `r || s` signature, or [`ProtocolError::Signing`] when
    /// the signature cannot be made (ring's signing fails only when its random source does).
    pub fn try_sign(&self, message: &[u8]) -> Result<Signature, ProtocolError> {
        let sig = self
            .pair
            .sign(&self.rng, message)
            .map_err(|_| ProtocolError::Signing("the random source failed"))?;
        Signature::from_platform_bytes(sig.as_ref())
            .map_err(|_| ProtocolError::Signing("not a valid fixed P-256 signature"))
    }

    /// [`Self::try_sign`] that panics when signing fails: for tests, benches and test fakes
    /// only. Product code (the phone crates, signin-domain) calls `try_sign`.
    #[allow(clippy::expect_used)]
    pub fn sign(&self, message: &[u8]) -> Signature {
        self.try_sign(message).expect("P-256 signing does not fail")
    }
}

impl fmt::Debug for EcdsaSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EcdsaSigner({:?})", self.public_key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spki_der_and_sec1_normalize_to_the_same_key() {
        use p256::pkcs8::EncodePublicKey;
        let (signer, _) = EcdsaSigner::generate().unwrap();
        let pk = signer.public_key();
        let p = p256::PublicKey::from_sec1_bytes(pk.as_bytes()).unwrap();
        let der = p.to_public_key_der().unwrap();
        assert_eq!(PublicKey::from_platform_bytes(der.as_bytes()).unwrap(), pk);
        let compressed = p.to_encoded_point(true);
        assert_eq!(
            PublicKey::from_platform_bytes(compressed.as_bytes()).unwrap(),
            pk
        );
    }

    #[test]
    fn der_signatures_normalize_and_verify() {
        let (signer, _) = EcdsaSigner::generate().unwrap();
        let sig = signer.try_sign(b"hello").unwrap();
        let back = Signature::from_platform_bytes(&sig.to_der()).unwrap();
        assert_eq!(back, sig);
        signer.public_key().verify(b"hello", &back).unwrap();
        assert_eq!(
            signer.public_key().verify(b"hellO", &back),
            Err(ProtocolError::BadSignature)
        );
    }

    #[test]
    fn garbage_keys_and_signatures_are_typed_errors() {
        assert_eq!(
            PublicKey::from_platform_bytes(&[4u8; 65]),
            Err(ProtocolError::InvalidPublicKey)
        );
        assert_eq!(
            PublicKey::from_platform_bytes(&[]),
            Err(ProtocolError::InvalidPublicKey)
        );
        assert_eq!(
            Signature::from_platform_bytes(&[0x30, 0x02]),
            Err(ProtocolError::InvalidSignatureEncoding)
        );
        assert_eq!(
            Signature::from_platform_bytes(&[0u8; 64]),
            Err(ProtocolError::InvalidSignatureEncoding)
        );
        assert_eq!(
            Signature::from_b64("signature", &b64(&[0u8; 64])),
            Err(ProtocolError::InvalidSignatureEncoding)
        );
    }

    #[test]
    fn a_loaded_key_has_the_public_key_of_its_pkcs8_document() {
        let (signer, pkcs8) = EcdsaSigner::generate().unwrap();
        let again = EcdsaSigner::from_pkcs8(&pkcs8).unwrap();
        assert_eq!(again.public_key(), signer.public_key());
        let sig = again.try_sign(b"m").unwrap();
        signer.public_key().verify(b"m", &sig).unwrap();
    }
}
