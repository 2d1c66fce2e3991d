//! The exported facade. Each method is one call into `internal`.
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use authenticator_protocol::sign_in::Decision as WireDecision;

use crate::error::{AuthenticatorError, Error};
use crate::internal::http::{HttpTransport, ReqwestTransport, ServerApi};
use crate::internal::store::Store;
use crate::internal::{browser, enroll, push, push_registration, sign_in, totp, transfer, Core};
use crate::platform::{DeviceKeyStore, SecretStore};
use crate::types::{
    AccountSummary, Decision, MoveIn, MoveOut, PendingRequest, PushOutcome, PushRegistration,
    PushTarget, PushUpdateResult, TotpAccount, TotpCode,
};

type Result<T> = std::result::Result<T, AuthenticatorError>;

/// The authenticator: one instance per process and data directory.
#[derive(uniffi::Object)]
pub struct Authenticator {
    core: Core,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authenticator")
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Authenticator {
    /// Creates `data_dir` if needed, opens the SQLite database (WAL) and migrates it. Sync and
    /// quick: no network.
    /// `key_store` holds the keys and verifies the user for every signature that carries a
    /// prompt (see `DeviceKeyStore::sign`).
    #[uniffi::constructor]
    pub fn new(data_dir: String, key_store: Arc<dyn DeviceKeyStore>) -> Result<Arc<Self>> {
        let transport = ReqwestTransport::new().map_err(|e| Error::Internal(e.to_string()))?;
        Self::with_transport(data_dir, key_store, Arc::new(transport))
    }

    /// Like `new`, with the `secret_store` that seals TOTP secrets at rest: the offline
    /// fallback (each enrollment's TOTP secret, `otpauth://` imports) needs one. Without it
    /// the TOTP methods fail with `SecretStoreUnavailable` and enrollments keep no TOTP secret.
    #[uniffi::constructor]
    pub fn with_secret_store(
        data_dir: String,
        key_store: Arc<dyn DeviceKeyStore>,
        secret_store: Arc<dyn SecretStore>,
    ) -> Result<Arc<Self>> {
        let transport = ReqwestTransport::new().map_err(|e| Error::Internal(e.to_string()))?;
        Self::build(data_dir, key_store, Some(secret_store), Arc::new(transport))
    }

    /// Adds a TOTP account from an `otpauth://totp/…` URI (a QR code of another service).
    /// The secret is sealed by the `SecretStore` before it is stored.
    pub async fn add_totp_account(&self, uri: String) -> Result<TotpAccount> {
        Ok(totp::add(&self.core, &uri).await?)
    }

    /// Every TOTP account: the enrollments' offline-fallback secrets and imports. Async (reads
    /// the database): Kotlin `suspend`, Swift `async`.
    pub async fn totp_accounts(&self) -> Result<Vec<TotpAccount>> {
        Ok(totp::list(&self.core)?)
    }

    /// The current code of a TOTP account (RFC 6238), with the seconds it stays current.
    /// Works offline.
    pub async fn totp_code(&self, totp_id: String) -> Result<TotpCode> {
        Ok(totp::code(&self.core, &totp_id).await?)
    }

    /// Removes a TOTP account. (An enrollment's secret also goes with its account.) Async
    /// (writes the database).
    pub async fn remove_totp_account(&self, totp_id: String) -> Result<()> {
        Ok(totp::remove(&self.core, &totp_id)?)
    }

    /// Enrolls from the QR-code link. Nothing is stored (and the new key is deleted) unless the
    /// whole enrollment succeeds.
    pub async fn enroll(
        &self,
        enrollment_url: String,
        device_name: String,
        push: PushRegistration,
    ) -> Result<AccountSummary> {
        self.core.finish_interrupted_key_work().await?;
        enroll::retry_unregistrations(&self.core).await;
        Ok(enroll::enroll(&self.core, &enrollment_url, &device_name, push).await?)
    }

    /// The app's push registration changed (FCM `onNewToken`, a new APNs device token, a
    /// UnifiedPush endpoint change): tells every account's server, signed by the account's
    /// device key (PROTOCOL.md §5.10). One result per account: `Updated`, `RetryLater` (call
    /// again later) or `Refused`. `InvalidInput` (nothing sent) for a registration enrollment
    /// would refuse too.
    pub async fn update_push_registration(
        &self,
        push: PushRegistration,
    ) -> Result<Vec<PushUpdateResult>> {
        Ok(push_registration::update_all(&self.core, &push).await?)
    }

    pub async fn accounts(&self) -> Result<Vec<AccountSummary>> {
        self.core.finish_interrupted_key_work().await?;
        Ok(self
            .core
            .store
            .accounts()
            .map(|a| a.iter().map(|a| a.summary()).collect())?)
    }

    /// Creates the user-verification-bound key and registers it: its first signature (the
    /// registration proof) carries the prompt, so the user is asked once.
    pub async fn enable_phone_sign_in(&self, account_id: String) -> Result<AccountSummary> {
        self.core.finish_interrupted_key_work().await?;
        Ok(
            enroll::enable_phone_sign_in(&self.core, &sign_in::parse_account_id(&account_id)?)
                .await?,
        )
    }

    /// Removes the account from this device and deletes its keys, and tells its server (the
    /// device is removed there too; PROTOCOL.md §5.7). The account is gone at once; a server
    /// that cannot be reached is told before later polls, enrollments and removals (for 30
    /// days), and the device key that signs that notice is deleted once it is sent. A key the
    /// key store fails to delete is deleted by a later instance (the key journal).
    pub async fn remove_account(&self, account_id: String) -> Result<()> {
        self.core.finish_interrupted_key_work().await?;
        let account_id = sign_in::parse_account_id(&account_id)?;
        enroll::retry_unregistrations(&self.core).await;
        Ok(enroll::remove_account(&self.core, &account_id).await?)
    }

    /// Parses an APNs `userInfo` JSON or a bare envelope.
    pub fn parse_push_json(&self, payload: String) -> Result<PushTarget> {
        Ok(push::parse_json(&payload)?.into())
    }

    /// Parses an FCM data map.
    pub fn parse_push_data(&self, data: HashMap<String, String>) -> Result<PushTarget> {
        Ok(push::parse_data(&data)?.into())
    }

    /// Parses, fetches and verifies the request a push names.
    pub async fn handle_push_json(&self, payload: String) -> Result<PushOutcome> {
        Ok(push::handle(&self.core, push::parse_json(&payload)?).await?)
    }

    pub async fn handle_push_data(&self, data: HashMap<String, String>) -> Result<PushOutcome> {
        Ok(push::handle(&self.core, push::parse_data(&data)?).await?)
    }

    /// Fetches, verifies (pinned server key) and stores one request.
    pub async fn fetch_request(
        &self,
        account_id: String,
        request_id: String,
    ) -> Result<PendingRequest> {
        Ok(sign_in::fetch_request(&self.core, &account_id, &request_id).await?)
    }

    /// Long-polls every account concurrently (up to `wait_seconds`, capped at 60), fetches and
    /// stores what arrives, and returns the pending requests.
    pub async fn poll(&self, wait_seconds: u32) -> Result<Vec<PendingRequest>> {
        // Alongside, not before: an unreachable server of a removed account must not delay
        // the requests of the others.
        let (_, polled) = tokio::join!(
            enroll::retry_unregistrations(&self.core),
            push::poll(&self.core, wait_seconds)
        );
        Ok(polled?)
    }

    /// Ends every `poll` in progress now (the app went to the background, the user closed the
    /// screen). Each returns at once with the requests already stored, as if its wait had
    /// timed out. Polls started afterwards wait normally.
    pub fn cancel_poll(&self) {
        self.core
            .poll_cancel
            .send_modify(|generation| *generation += 1);
    }

    /// Stored requests that are unanswered and unexpired.
    pub async fn pending_requests(&self) -> Result<Vec<PendingRequest>> {
        Ok(sign_in::pending_requests(&self.core)?)
    }

    /// Approves the request `request_id` of account `account_id` (both from its
    /// `PendingRequest`: a request is only known under the account whose server sent it).
    /// `typed_number` is what the user typed (ignored when the request has no number
    /// matching), exactly: the digits and nothing around them (`" 42"` is `InvalidNumber`,
    /// never trimmed; PROTOCOL.md §2). The approval signature carries the user-verification prompt: the key store
    /// verifies the user for that very signature.
    pub async fn approve(
        &self,
        account_id: String,
        request_id: String,
        typed_number: String,
    ) -> Result<Decision> {
        Ok(sign_in::answer(
            &self.core,
            &account_id,
            &request_id,
            WireDecision::Approve,
            Some(&typed_number),
        )
        .await?)
    }

    /// Denies (no user verification: refusing needs no proof of presence).
    pub async fn deny(&self, account_id: String, request_id: String) -> Result<Decision> {
        Ok(sign_in::answer(
            &self.core,
            &account_id,
            &request_id,
            WireDecision::Deny,
            None,
        )
        .await?)
    }

    /// Starts the browser listener (PROTOCOL.md §5.9, phishing-resistant sign-in) on
    /// `127.0.0.1:port` — `47813` unless the deployment chose another; 0 picks a free port —
    /// and returns the port. Sign-in pages on this device announce themselves to it; an
    /// approval of a phishing-resistant sign-in needs its page seen at the server's origin.
    /// Replaces a listener already running. Runs until `stop_browser_listener` or the
    /// `Authenticator` is dropped.
    pub async fn start_browser_listener(&self, port: u16) -> Result<u16> {
        self.stop_listener();
        // The stopped listener's socket closes when its task ends: wait for that, so the
        // same port binds again (what an app does each time it comes to the foreground).
        let stopping = self
            .core
            .browser_listener_stopping
            .lock()
            .map_err(|_| Error::Internal("browser listener lock poisoned".into()))?
            .take();
        if let Some(task) = stopping {
            browser::stopped(task).await;
        }
        let listener = browser::listen(self.core.store.clone(), port).await?;
        let bound = listener.port;
        let previous = self
            .core
            .browser_listener
            .lock()
            .map_err(|_| Error::Internal("browser listener lock poisoned".into()))?
            .replace(listener);
        // Another start raced this one: keep the newest, stop the other.
        drop(previous);
        Ok(bound)
    }

    /// Stops the browser listener, if one runs (e.g. when the app goes to the background).
    /// Its port is free once the next `start_browser_listener` begins binding. Async, as every
    /// call that touches the listener's state: never blocks the caller's thread.
    pub async fn stop_browser_listener(&self) {
        self.stop_listener();
    }

    /// Starts a move to a new phone (PROTOCOL.md §5.11), on the old phone: each account's
    /// server issues a move code its device key vouches for (the user is verified once per
    /// account), the TOTP accounts the user added go end-to-end encrypted with the first
    /// account's server, and `MoveOut.link` holds it all: show it as one QR code. The link
    /// works once, for ten minutes. Afterwards the user chooses: keep this phone's accounts,
    /// or `remove_all_accounts`.
    pub async fn move_out(&self) -> Result<MoveOut> {
        self.core.finish_interrupted_key_work().await?;
        Ok(transfer::move_out(&self.core).await?)
    }

    /// Completes a move on the new phone from the old phone's link: enrolls every account
    /// (active at once: the old phone vouched) and adds the TOTP accounts. A used link is
    /// `MoveAlreadyUsed`, an expired one `MoveExpired`, one whose old phone was removed
    /// `MoveVoucherRemoved`.
    pub async fn move_in(
        &self,
        move_link: String,
        device_name: String,
        push: PushRegistration,
    ) -> Result<MoveIn> {
        self.core.finish_interrupted_key_work().await?;
        Ok(transfer::move_in(&self.core, &move_link, &device_name, push).await?)
    }

    /// After a move, on the old phone: removes every account (each server is told) and
    /// every TOTP account.
    pub async fn remove_all_accounts(&self) -> Result<()> {
        self.core.finish_interrupted_key_work().await?;
        enroll::retry_unregistrations(&self.core).await;
        Ok(transfer::remove_everything(&self.core).await?)
    }

    /// The TOTP accounts the user added, as an export file (JSON text) encrypted under
    /// `passphrase` (Argon2id, AES-256-GCM; at least 8 characters), for a new phone without
    /// the old one at hand. Phone sign-in keys and the enrollments' own TOTP secrets are
    /// never exported.
    pub async fn export_totp_accounts(&self, passphrase: String) -> Result<String> {
        Ok(transfer::export(&self.core, &passphrase).await?)
    }

    /// Adds the TOTP accounts of an export file. A wrong passphrase is `WrongPassphrase`; a
    /// changed or foreign file is `InvalidExportFile`.
    pub async fn import_totp_accounts(
        &self,
        export: String,
        passphrase: String,
    ) -> Result<Vec<TotpAccount>> {
        Ok(transfer::import(&self.core, &export, &passphrase).await?)
    }

    /// "This wasn't me": denies and reports fraud (no user verification).
    pub async fn report_fraud(&self, account_id: String, request_id: String) -> Result<Decision> {
        Ok(sign_in::answer(
            &self.core,
            &account_id,
            &request_id,
            WireDecision::Report,
            None,
        )
        .await?)
    }
}

impl Authenticator {
    /// Stops the browser listener, if one runs (the body of `stop_browser_listener`).
    fn stop_listener(&self) {
        let running = match self.core.browser_listener.lock() {
            Ok(mut running) => running.take(),
            Err(_) => return,
        };
        if let Some(task) = running.and_then(browser::BrowserListener::stop) {
            if let Ok(mut stopping) = self.core.browser_listener_stopping.lock() {
                // An older stop's task was aborted too; the newest is the one to wait for.
                *stopping = Some(task);
            }
        }
    }

    /// Like `new`, with a chosen HTTP transport (tests plug an in-process fake server; not
    /// exported through uniffi).
    pub fn with_transport(
        data_dir: String,
        key_store: Arc<dyn DeviceKeyStore>,
        transport: Arc<dyn HttpTransport>,
    ) -> Result<Arc<Self>> {
        Self::build(data_dir, key_store, None, transport)
    }

    /// Like `with_secret_store`, with a chosen HTTP transport (tests; not exported).
    pub fn with_secret_store_and_transport(
        data_dir: String,
        key_store: Arc<dyn DeviceKeyStore>,
        secret_store: Arc<dyn SecretStore>,
        transport: Arc<dyn HttpTransport>,
    ) -> Result<Arc<Self>> {
        Self::build(data_dir, key_store, Some(secret_store), transport)
    }

    fn build(
        data_dir: String,
        key_store: Arc<dyn DeviceKeyStore>,
        secret_store: Option<Arc<dyn SecretStore>>,
        transport: Arc<dyn HttpTransport>,
    ) -> Result<Arc<Self>> {
        if data_dir.trim().is_empty() {
            return Err(Error::InvalidInput("the data directory is empty".into()).into());
        }
        let store = Arc::new(Store::open(&PathBuf::from(data_dir))?);
        Ok(Arc::new(Authenticator {
            core: Core {
                store,
                browser_listener: std::sync::Mutex::new(None),
                browser_listener_stopping: std::sync::Mutex::new(None),
                keys: key_store,
                secrets: secret_store,
                api: ServerApi::new(transport),
                poll_cancel: tokio::sync::watch::channel(0).0,
                push_rotation: tokio::sync::Mutex::new(authenticator_protocol::UnixMillis(0)),
            },
        }))
    }
}
