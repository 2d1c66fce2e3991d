//! Capabilities the platform provides, implemented in Kotlin/Swift (or in Rust for the desktop
//! and tests): a store of hardware-backed P-256 keys and a user-verification prompt.
use crate::types::VerificationOutcome;

/// Errors a platform implementation reports. Any undeclared foreign exception arrives as
/// `Failed` through `From<UnexpectedUniFFICallbackError>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum PlatformError {
    #[error("the user cancelled the operation")]
    Cancelled,
    #[error("the capability is not available on this device")]
    NotAvailable,
    #[error("the key does not exist")]
    KeyNotFound,
    #[error("platform failure: {reason}")]
    Failed { reason: String },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for PlatformError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        PlatformError::Failed { reason: e.reason }
    }
}

/// P-256 keys that never leave the platform key store (Android Keystore / StrongBox, Secure
/// Enclave). The core chooses unique aliases and normalizes the formats returned.
#[uniffi::export(foreign)]
#[async_trait::async_trait]
pub trait DeviceKeyStore: Send + Sync {
    /// Creates a new key under `alias` and returns its public key: SEC1 (65 or 33 bytes) or
    /// X.509 SubjectPublicKeyInfo DER. With `require_user_verification` the key must only sign
    /// after biometric/device-credential verification.
    async fn generate(
        &self,
        alias: String,
        require_user_verification: bool,
    ) -> Result<Vec<u8>, PlatformError>;
    /// ECDSA P-256 / SHA-256 over `message` (the platform hashes): X9.62 DER or 64-byte `r || s`.
    async fn sign(&self, alias: String, message: Vec<u8>) -> Result<Vec<u8>, PlatformError>;
    /// Deletes the key. A missing key is `KeyNotFound`.
    async fn delete(&self, alias: String) -> Result<(), PlatformError>;
}

/// Asks the user to prove presence (biometrics or device credential).
#[uniffi::export(foreign)]
#[async_trait::async_trait]
pub trait UserVerifier: Send + Sync {
    /// `reason` is shown in the system prompt.
    async fn verify(&self, reason: String) -> Result<VerificationOutcome, PlatformError>;
}
