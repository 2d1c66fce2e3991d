//! Everything behind the exported facade.
pub(crate) mod browser;
pub(crate) mod enroll;
pub mod http;
pub(crate) mod push;
pub(crate) mod push_registration;
pub(crate) mod sign_in;
pub(crate) mod store;
pub(crate) mod totp;
pub(crate) mod transfer;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use authenticator_protocol::encoding::b64;
use authenticator_protocol::{PublicKey, Signature};

use crate::error::{Error, Result};
use crate::platform::{DeviceKeyStore, PlatformError, SecretStore};
use http::{DeviceSigner, ServerApi};
use store::{Account, Store};

pub(crate) struct Core {
    /// Shared with the browser listener's task.
    pub store: Arc<Store>,
    pub keys: Arc<dyn DeviceKeyStore>,
    /// Seals TOTP secrets; without one the core keeps no TOTP accounts.
    pub secrets: Option<Arc<dyn SecretStore>>,
    pub api: ServerApi,
    /// Bumped by `Authenticator::cancel_poll`: long-polls in progress at that moment end.
    pub poll_cancel: tokio::sync::watch::Sender<u64>,
    /// The browser listener (§5.9), while the app runs one.
    pub browser_listener: std::sync::Mutex<Option<browser::BrowserListener>>,
    /// The task of a listener being stopped, until it has closed its socket: a new start
    /// waits for it, so that the app can stop and start again on the same port at once.
    pub browser_listener_stopping: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Push rotations (§5.10) one at a time, and the signed time of the last one: a server
    /// takes only a rotation newer than the one in force, so two calls in the same
    /// millisecond, or overlapping calls, must still reach it in order, the last one winning.
    pub push_rotation: tokio::sync::Mutex<authenticator_protocol::UnixMillis>,
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
    /// The key is journaled first (store.rs, `MIGRATION_4`): if the process dies before an
    /// account owns it, the next instance deletes it.
    pub async fn generate_key(&self, alias: &str, require_uv: bool) -> Result<PublicKey> {
        self.store.journal_key(alias)?;
        let raw = match bounded(
            "create a key",
            self.keys.generate(alias.to_owned(), require_uv),
        )
        .await
        {
            Ok(raw) => raw,
            Err(e) => {
                // A key store may have created the key before failing.
                self.discard_key(alias).await;
                return Err(Error::KeyStore(e));
            }
        };
        match PublicKey::from_platform_bytes(&raw) {
            Ok(pk) => Ok(pk),
            Err(_) => {
                self.discard_key(alias).await;
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
                PlatformError::VerificationFailed => Error::VerificationFailed,
                // No biometric or passcode to verify with: nothing signed, and the app is told
                // so (its own error: the user must set up a screen lock, not try again).
                PlatformError::NotAvailable => Error::VerificationUnavailable,
                other => Error::KeyStore(other),
            })?;
        Signature::from_platform_bytes(&raw).map_err(|_| Error::KeyFormat("signature"))
    }

    /// Deletes a journaled key that no account owns (a failed operation's new key, a replaced
    /// or removed account's key) and takes it out of the journal. Failures are logged, not
    /// raised (the caller's own outcome is what matters): the key stays journaled and the next
    /// instance deletes it.
    pub async fn discard_key(&self, alias: &str) {
        match self.delete_key(alias).await {
            Ok(()) => {
                if let Err(e) = self.store.forget_key(alias) {
                    tracing::warn!(error = %e, "could not update the key journal");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not delete an unused key; retried later"),
        }
    }

    /// Deletes the keys of operations an earlier instance did not finish (killed mid-way, or
    /// a key store that failed to delete). Cheap when there are none (one query). Called
    /// before the operations that list, create or remove keys and accounts.
    pub async fn finish_interrupted_key_work(&self) -> Result<()> {
        for alias in self.store.interrupted_keys()? {
            self.discard_key(&alias).await;
        }
        Ok(())
    }

    /// Deletes a key; a key that is already gone is fine. Bounded: deleting shows no UI.
    pub async fn delete_key(&self, alias: &str) -> Result<()> {
        match bounded("delete a key", self.keys.delete(alias.to_owned())).await {
            Ok(()) | Err(PlatformError::KeyNotFound) => Ok(()),
            Err(e) => Err(Error::KeyStore(e)),
        }
    }

    pub fn device_signer<'a>(&'a self, account: &'a Account) -> KeySigner<'a> {
        self.signer_for(&account.device_key_alias)
    }

    /// Device auth with the key `alias` (a removed account's device key, for its notice).
    pub fn signer_for<'a>(&'a self, alias: &'a str) -> KeySigner<'a> {
        KeySigner { core: self, alias }
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
