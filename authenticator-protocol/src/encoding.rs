//! Binary fields travel as unpadded base64url (RFC 4648 §5).
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::ProtocolError;

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(field: &'static str, text: &str) -> Result<Vec<u8>, ProtocolError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| ProtocolError::InvalidBase64(field))
}

/// Decodes a base64url field that must have exactly `N` bytes.
pub fn unb64_fixed<const N: usize>(
    field: &'static str,
    text: &str,
) -> Result<[u8; N], ProtocolError> {
    let bytes = unb64(field, text)?;
    let actual = bytes.len();
    bytes.try_into().map_err(|_| ProtocolError::InvalidLength {
        field,
        expected: N,
        actual,
    })
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// Constant-time equality for secrets (codes, numbers, hashes).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
