use thiserror::Error;

/// Everything that can be wrong with protocol input. Messages never contain the offending
/// value (it may be a secret such as an enrollment code), only which field was wrong.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("invalid enrollment URL: {0}")]
    InvalidEnrollmentUrl(&'static str),
    /// A `phonesignin://move` link (§5.11) that is not well formed; names the part, never
    /// its value (the link holds move codes and a key).
    #[error("invalid move link: {0}")]
    InvalidMoveLink(&'static str),
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u64),
    #[error("server URL must use https (plain http is allowed only for loopback addresses)")]
    InsecureServerUrl,
    #[error("field `{0}` is not valid base64url")]
    InvalidBase64(&'static str),
    #[error("field `{field}` has length {actual}, expected {expected}")]
    InvalidLength {
        field: &'static str,
        expected: usize,
        actual: usize,
    },
    #[error("field `{0}` is missing")]
    MissingField(&'static str),
    #[error("field `{0}` is malformed")]
    MalformedField(&'static str),
    #[error("not a valid P-256 public key")]
    InvalidPublicKey,
    #[error("not a valid P-256 ECDSA signature encoding")]
    InvalidSignatureEncoding,
    #[error("signature does not verify")]
    BadSignature,
    #[error("server key does not match the pinned fingerprint")]
    FingerprintMismatch,
    #[error("the number must be 2 to 6 digits")]
    InvalidNumber,
    #[error("the number length must be 2 to 6 digits")]
    InvalidNumberLength,
    #[error("malformed push payload: {0}")]
    MalformedPush(&'static str),
    #[error("malformed JSON: {0}")]
    InvalidJson(String),
    #[error("could not create a key: {0}")]
    KeyGeneration(&'static str),
    /// The operating system's random source failed (identifiers and signatures need it).
    #[error("the system random source failed")]
    RandomSource,
    #[error("could not sign: {0}")]
    Signing(&'static str),
    /// A name meant to be shown (a user, application, device or server name, a location)
    /// holds a character that names may not hold ([`crate::text::check_plain`]).
    #[error("field `{field}` {error}")]
    UnsafeText {
        field: &'static str,
        error: crate::text::UnsafeText,
    },
}

impl From<serde_json::Error> for ProtocolError {
    fn from(e: serde_json::Error) -> Self {
        // serde_json messages name the type and position, never the value.
        ProtocolError::InvalidJson(e.to_string())
    }
}
