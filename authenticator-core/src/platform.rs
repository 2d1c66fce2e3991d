//! Capabilities the platform provides, implemented in Kotlin/Swift (or in Rust for the desktop
//! and tests): a store of hardware-backed P-256 keys that verifies the user for the signatures
//! that ask for it.
//!
//! User verification is part of the signature call, not a separate step: a separate "verify,
//! then sign" contract let an Android key store sign a push approval with a key that has no
//! user-authentication binding and show no prompt at all, and made iOS prompt twice for
//! phone sign-in. Now the core passes the prompt with every signature that needs one (every
//! approval, and the proof that enables phone sign-in), and no prompt with the others (deny,
//! report, device authentication, enrollment proof).
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
    /// The user did not pass verification (wrong biometric, lock-out, wrong passcode).
    #[error("user verification failed")]
    VerificationFailed,
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
    ///
    /// With `prompt`, the user must be verified (biometrics or device credential) **for this
    /// signature**, with `prompt` as the reason shown: through the key's own prompt where the
    /// key is bound to user authentication (Android `BiometricPrompt` with a `CryptoObject`,
    /// a Secure Enclave key with an access control), otherwise through a standalone prompt
    /// before signing. Nothing may be signed unless the user passed: a dismissed prompt is
    /// `Cancelled`, a failed one `VerificationFailed`, no biometric or passcode set up
    /// `NotAvailable`. Without `prompt` the platform shows no UI.
    async fn sign(
        &self,
        alias: String,
        message: Vec<u8>,
        prompt: Option<String>,
    ) -> Result<Vec<u8>, PlatformError>;
    /// Deletes the key. A missing key is `KeyNotFound`.
    async fn delete(&self, alias: String) -> Result<(), PlatformError>;
}

/// A user-verification prompt, for key stores written in Rust (the desktop's
/// `SoftwareKeyStore` and the test key stores), which verify the user themselves before a
/// signature that carries a prompt. Not exported: phone key stores use the platform's prompt.
#[async_trait::async_trait]
pub trait UserVerifier: Send + Sync {
    /// `reason` is shown in the system prompt.
    async fn verify(&self, reason: String) -> Result<VerificationOutcome, PlatformError>;
}

/// What a Rust key store does with a signature's `prompt` before signing: asks `verifier`
/// (nothing to ask without a prompt) and refuses as `DeviceKeyStore::sign` says when the user
/// does not pass.
pub async fn verify_for_signature(
    verifier: &dyn UserVerifier,
    prompt: Option<String>,
) -> Result<(), PlatformError> {
    let Some(reason) = prompt else {
        return Ok(());
    };
    match verifier.verify(reason).await? {
        VerificationOutcome::Verified => Ok(()),
        VerificationOutcome::Denied => Err(PlatformError::VerificationFailed),
        VerificationOutcome::Cancelled => Err(PlatformError::Cancelled),
    }
}

/// Encryption at rest for the secrets the core keeps (TOTP secrets), with a key that never
/// leaves the platform: an AES-GCM key in the Android Keystore, a Keychain / Secure Enclave
/// protected key on iOS, `SoftwareKeyStore`'s wrapping key on the desktop. `context` names the
/// secret; bind it to the ciphertext (e.g. as AES-GCM associated data) so a sealed value cannot
/// be swapped for another's. No user verification: codes must show without a prompt. Each call
/// must answer within `KEY_STORE_TIMEOUT`.
#[uniffi::export(foreign)]
#[async_trait::async_trait]
pub trait SecretStore: Send + Sync {
    /// Encrypts `plaintext`; the result is stored by the core as is.
    async fn seal(&self, context: String, plaintext: Vec<u8>) -> Result<Vec<u8>, PlatformError>;
    /// Decrypts what `seal` returned for the same `context`; anything else (another context,
    /// a changed byte, a deleted platform key) is `Failed`.
    async fn unseal(&self, context: String, sealed: Vec<u8>) -> Result<Vec<u8>, PlatformError>;
}
