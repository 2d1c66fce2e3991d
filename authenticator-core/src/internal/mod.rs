//! Everything behind the exported facade.
pub(crate) mod enroll;
pub mod http;
pub(crate) mod push;
pub(crate) mod sign_in;
pub(crate) mod store;

use std::sync::Arc;

use authenticator_protocol::encoding::b64;
use authenticator_protocol::{PublicKey, Signature};

use crate::error::{Error, Result};
use crate::platform::{DeviceKeyStore, PlatformError, UserVerifier};
use crate::types::VerificationOutcome;
use http::{DeviceSigner, ServerApi};
use store::{Account, Store};

pub(crate) struct Core {
    pub store: Store,
    pub keys: Arc<dyn DeviceKeyStore>,
    pub verifier: Arc<dyn UserVerifier>,
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

impl Core {
    /// Generates a key and normalizes its public key. If the platform hands back something
    /// unusable, the key is deleted again.
    pub async fn generate_key(&self, alias: &str, require_uv: bool) -> Result<PublicKey> {
        let raw = self
            .keys
            .generate(alias.to_owned(), require_uv)
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

    pub async fn sign(&self, alias: &str, message: Vec<u8>) -> Result<Signature> {
        let raw = self
            .keys
            .sign(alias.to_owned(), message)
            .await
            .map_err(Error::KeyStore)?;
        Signature::from_platform_bytes(&raw).map_err(|_| Error::KeyFormat("signature"))
    }

    /// Best-effort cleanup after a failed operation; failures are logged, not raised (the
    /// original error is what the caller needs).
    pub async fn delete_key_quietly(&self, alias: &str) {
        match self.keys.delete(alias.to_owned()).await {
            Ok(()) | Err(PlatformError::KeyNotFound) => {}
            Err(e) => tracing::warn!(error = %e, "could not delete an unused key"),
        }
    }

    /// Deletes a key; a key that is already gone is fine.
    pub async fn delete_key(&self, alias: &str) -> Result<()> {
        match self.keys.delete(alias.to_owned()).await {
            Ok(()) | Err(PlatformError::KeyNotFound) => Ok(()),
            Err(e) => Err(Error::KeyStore(e)),
        }
    }

    /// Asks the platform to verify the user; anything but `Verified` is an error.
    pub async fn verify_user(&self, reason: String) -> Result<()> {
        match self.verifier.verify(reason).await {
            Ok(VerificationOutcome::Verified) => Ok(()),
            Ok(VerificationOutcome::Cancelled) => Err(Error::UserCancelled),
            Ok(VerificationOutcome::Denied) => Err(Error::VerificationFailed),
            Err(e) => Err(Error::Verifier(e)),
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
