//! Everything behind the exported facade.
pub(crate) mod enroll;
pub mod http;
pub(crate) mod push;
pub(crate) mod sign_in;
pub(crate) mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use authenticator_protocol::encoding::b64;
use authenticator_protocol::{PublicKey, Signature};

use crate::error::{Error, Result};
use crate::platform::{DeviceKeyStore, PlatformError};
use http::{DeviceSigner, ServerApi};
use store::{Account, Store};

pub(crate) struct Core {
    pub store: Store,
    pub keys: Arc<dyn DeviceKeyStore>,
    pub api: ServerApi,
    /// Bumped by `Authenticator::cancel_poll`: long-polls in progress at that moment end.
    pub poll_cancel: tokio::sync::watch::Sender<u64>,
}

/// A fresh, unique key alias: `psi.<16 random bytes>.<purpose>`.
pub(crate) fn new_alias(purpose: &str) -> Result<String> {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| Error::Internal("the OS random source failed".into()))?;
    Ok(format!("psi.{}.{purpose}", b64(&bytes)))
}

/// The longest a key-store call that shows no UI may take: creating a key, deleting one, and
/// signing with a device key (device auth, enrollment proof, deny/report, push approvals).
/// StrongBox and the Secure Enclave answer these in well under a few seconds; a callback that
/// never completes (e.g. a Kotlin implementation that threw a `java.lang.Error`, which the
/// generated code does not turn into a result) fails the call with `KeyStore` instead of
/// hanging it. A signature that carries a user-verification prompt (every approval, enabling
/// phone sign-in) is **not** bounded: the platform shows the biometric / passcode prompt for
/// it, and a user may take their time.
pub const KEY_STORE_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a key-store call that shows no UI, bounded by `KEY_STORE_TIMEOUT`.
async fn bounded<T>(
    what: &'static str,
    call: impl Future<Output = std::result::Result<T, PlatformError>>,
) -> std::result::Result<T, PlatformError> {
    tokio::time::timeout(KEY_STORE_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| {
            Err(PlatformError::Failed {
                reason: format!(
                    "the key store did not {what} within {} s",
                    KEY_STORE_TIMEOUT.as_secs()
                ),
            })
        })
}

impl Core {
    /// Generates a key and normalizes its public key. If the platform hands back something
    /// unusable, the key is deleted again. Bounded: creating a key shows no UI.
    pub async fn generate_key(&self, alias: &str, require_uv: bool) -> Result<PublicKey> {
        let raw = bounded(
            "create a key",
            self.keys.generate(alias.to_owned(), require_uv),
        )
        .await
        .map_err(Error::KeyStore)?;
        match PublicKey::from_platform_bytes(&raw) {
            Ok(pk) => Ok(pk),
            Err(_) => {
                self.delete_key_quietly(alias).await;
                Err(Error::KeyFormat("public key"))
            }
        }
    }

    /// Signs without user verification (device authentication, enrollment proof, deny,
    /// report): the platform shows no UI, so the call is bounded.
    pub async fn sign(&self, alias: &str, message: Vec<u8>) -> Result<Signature> {
        let raw = bounded("sign", self.keys.sign(alias.to_owned(), message, None))
            .await
            .map_err(Error::KeyStore)?;
        Signature::from_platform_bytes(&raw).map_err(|_| Error::KeyFormat("signature"))
    }

    /// Signs after the user passed verification **for this signature**: the key store shows
    /// `prompt` (the key's own prompt where it has one, a standalone one otherwise) and signs
    /// nothing unless the user passes. Not bounded in time: a user may take theirs (the
    /// caller's cancellation still ends it).
    pub async fn sign_verified(
        &self,
        alias: &str,
        message: Vec<u8>,
        prompt: String,
    ) -> Result<Signature> {
        let raw = self
            .keys
            .sign(alias.to_owned(), message, Some(prompt))
            .await
            .map_err(|e| match e {
                PlatformError::Cancelled => Error::UserCancelled,
                // No biometric or passcode to verify with: fails closed, as a failed prompt.
                PlatformError::VerificationFailed | PlatformError::NotAvailable => {
                    Error::VerificationFailed
                }
                other => Error::KeyStore(other),
            })?;
        Signature::from_platform_bytes(&raw).map_err(|_| Error::KeyFormat("signature"))
    }

    /// Best-effort cleanup after a failed operation; failures are logged, not raised (the
    /// original error is what the caller needs).
    pub async fn delete_key_quietly(&self, alias: &str) {
        match self.delete_key(alias).await {
            Ok(()) => {}
            Err(e) => tracing::warn!(error = %e, "could not delete an unused key"),
        }
    }

    /// Deletes a key; a key that is already gone is fine. Bounded: deleting shows no UI.
    pub async fn delete_key(&self, alias: &str) -> Result<()> {
        match bounded("delete a key", self.keys.delete(alias.to_owned())).await {
            Ok(()) | Err(PlatformError::KeyNotFound) => Ok(()),
            Err(e) => Err(Error::KeyStore(e)),
        }
    }

    pub fn device_signer<'a>(&'a self, account: &'a Account) -> KeySigner<'a> {
        KeySigner {
            core: self,
            alias: &account.device_key_alias,
        }
    }
}

/// Signs device-auth messages with one account's device key.
pub(crate) struct KeySigner<'a> {
    core: &'a Core,
    alias: &'a str,
}

#[async_trait::async_trait]
impl DeviceSigner for KeySigner<'_> {
    async fn sign_device_auth(&self, message: Vec<u8>) -> Result<Signature> {
        self.core.sign(self.alias, message).await
    }
}
