#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Test fakes (compiled for tests and with the `testing` feature): verifiers, key stores that
//! record what they were asked, and an in-process fake sign-in server that checks every
//! signature with the protocol crate, as the real server does.
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use authenticator_protocol::encoding::{b64, ct_eq, unb64, unb64_fixed};
use authenticator_protocol::enroll::{
    EnrollChallenge, EnrollProof, EnrollmentUrl, PasswordlessKeyRegistration,
};
use authenticator_protocol::push::PushEnvelope;
use authenticator_protocol::sign_in::{
    select_response_key, DeviceAuth, RequestDetails, RequestKind, SignInResponse,
    SignedRequestDetails,
};
use authenticator_protocol::wire::{self, ErrorBody, ErrorCode, MAX_CLOCK_SKEW_MS};
use authenticator_protocol::{
    AccountId, EcdsaSigner, PublicKey, RequestId, Signature, TypedNumber, UnixMillis,
};
use url::Url;

use crate::internal::http::{
    path_and_query, HttpMethod, HttpRequest, HttpResponse, HttpTransport, TransportError,
};
use crate::platform::{verify_for_signature, DeviceKeyStore, PlatformError, UserVerifier};
use crate::types::VerificationOutcome;

// ---------------------------------------------------------------- browser listener

/// How long the browser listener lets a connection take over a request's headers, and sit
/// idle (PROTOCOL.md §5.9; `internal::browser`).
pub const BROWSER_LISTENER_HEADER_READ_TIMEOUT: std::time::Duration =
    crate::internal::browser::HEADER_READ_TIMEOUT;
/// How long up to [`BROWSER_LISTENER_PROMPT_WAITS`] new connections may wait for their first
/// request (a browser asking its user first).
pub const BROWSER_LISTENER_PROMPT_WAIT: std::time::Duration = crate::internal::browser::PROMPT_WAIT;
pub const BROWSER_LISTENER_PROMPT_WAITS: usize = crate::internal::browser::PROMPT_WAITS;

// ---------------------------------------------------------------- verifiers

/// Always answers `Verified`.
pub struct AlwaysVerified;

#[async_trait::async_trait]
impl UserVerifier for AlwaysVerified {
    async fn verify(&self, _reason: String) -> Result<VerificationOutcome, PlatformError> {
        Ok(VerificationOutcome::Verified)
    }
}

/// Always answers `Denied`.
pub struct RefusingVerifier;

#[async_trait::async_trait]
impl UserVerifier for RefusingVerifier {
    async fn verify(&self, _reason: String) -> Result<VerificationOutcome, PlatformError> {
        Ok(VerificationOutcome::Denied)
    }
}

/// Always answers `Cancelled`.
pub struct CancellingVerifier;

#[async_trait::async_trait]
impl UserVerifier for CancellingVerifier {
    async fn verify(&self, _reason: String) -> Result<VerificationOutcome, PlatformError> {
        Ok(VerificationOutcome::Cancelled)
    }
}

/// Records every prompt and answers with a settable outcome (or error).
pub struct CountingVerifier {
    answer: Mutex<Result<VerificationOutcome, PlatformError>>,
    reasons: Mutex<Vec<String>>,
}

impl CountingVerifier {
    pub fn new(answer: VerificationOutcome) -> Arc<Self> {
        Arc::new(CountingVerifier {
            answer: Mutex::new(Ok(answer)),
            reasons: Mutex::new(Vec::new()),
        })
    }
    pub fn set_answer(&self, answer: Result<VerificationOutcome, PlatformError>) {
        *self.answer.lock().unwrap() = answer;
    }
    /// The reasons shown, in order.
    pub fn reasons(&self) -> Vec<String> {
        self.reasons.lock().unwrap().clone()
    }
    pub fn calls(&self) -> usize {
        self.reasons.lock().unwrap().len()
    }
}

#[async_trait::async_trait]
impl UserVerifier for CountingVerifier {
    async fn verify(&self, reason: String) -> Result<VerificationOutcome, PlatformError> {
        self.reasons.lock().unwrap().push(reason);
        self.answer.lock().unwrap().clone()
    }
}

// ---------------------------------------------------------------- key stores

/// Every operation fails with the given error.
pub struct FailingKeyStore(pub PlatformError);

#[async_trait::async_trait]
impl DeviceKeyStore for FailingKeyStore {
    async fn generate(&self, _: String, _: bool) -> Result<Vec<u8>, PlatformError> {
        Err(self.0.clone())
    }
    async fn sign(
        &self,
        _: String,
        _: Vec<u8>,
        _: Option<String>,
    ) -> Result<Vec<u8>, PlatformError> {
        Err(self.0.clone())
    }
    async fn delete(&self, _: String) -> Result<(), PlatformError> {
        Err(self.0.clone())
    }
}

/// One call a `RecordingKeyStore` saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCall {
    Generate {
        alias: String,
        require_user_verification: bool,
    },
    Sign {
        alias: String,
        message: Vec<u8>,
        /// The user-verification prompt the request carried.
        prompt: Option<String>,
        /// Whether a signature came back (false: refused prompt, missing key, failure).
        signed: bool,
    },
    Delete {
        alias: String,
    },
}

/// Wraps a real key store and records every call (to prove what was, and was not, signed).
pub struct RecordingKeyStore {
    inner: Arc<dyn DeviceKeyStore>,
    calls: Mutex<Vec<KeyCall>>,
    fail_sign_with: Mutex<Option<PlatformError>>,
    fail_delete_with: Mutex<Option<PlatformError>>,
}

impl RecordingKeyStore {
    pub fn new(inner: Arc<dyn DeviceKeyStore>) -> Arc<Self> {
        Arc::new(RecordingKeyStore {
            inner,
            calls: Mutex::new(Vec::new()),
            fail_sign_with: Mutex::new(None),
            fail_delete_with: Mutex::new(None),
        })
    }
    /// A recording store over a `MemoryKeyStore` whose prompts always pass.
    pub fn in_memory() -> Arc<Self> {
        Self::new(Arc::new(MemoryKeyStore::default()))
    }
    /// A recording store over a `MemoryKeyStore` that asks `verifier` for every prompt.
    pub fn verified_by(verifier: Arc<dyn UserVerifier>) -> Arc<Self> {
        Self::new(Arc::new(MemoryKeyStore::with_verifier(verifier)))
    }
    pub fn calls(&self) -> Vec<KeyCall> {
        self.calls.lock().unwrap().clone()
    }
    pub fn clear(&self) {
        self.calls.lock().unwrap().clear();
    }
    /// Signatures made so far (not requests that were refused), with their aliases.
    pub fn signs(&self) -> Vec<(String, Vec<u8>)> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                KeyCall::Sign {
                    alias,
                    message,
                    signed: true,
                    ..
                } => Some((alias, message)),
                _ => None,
            })
            .collect()
    }
    /// Signature requests so far, made or refused: alias, message and the prompt each carried.
    pub fn sign_requests(&self) -> Vec<(String, Vec<u8>, Option<String>)> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                KeyCall::Sign {
                    alias,
                    message,
                    prompt,
                    ..
                } => Some((alias, message, prompt)),
                _ => None,
            })
            .collect()
    }
    pub fn generated(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                KeyCall::Generate { alias, .. } => Some(alias),
                _ => None,
            })
            .collect()
    }
    pub fn deleted(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                KeyCall::Delete { alias } => Some(alias),
                _ => None,
            })
            .collect()
    }
    /// Makes later `sign` calls fail (still recorded).
    pub fn fail_signing(&self, error: Option<PlatformError>) {
        *self.fail_sign_with.lock().unwrap() = error;
    }
    /// Makes later `delete` calls fail (still recorded; the key stays).
    pub fn fail_deleting(&self, error: Option<PlatformError>) {
        *self.fail_delete_with.lock().unwrap() = error;
    }
}

#[async_trait::async_trait]
impl DeviceKeyStore for RecordingKeyStore {
    async fn generate(&self, alias: String, uv: bool) -> Result<Vec<u8>, PlatformError> {
        self.calls.lock().unwrap().push(KeyCall::Generate {
            alias: alias.clone(),
            require_user_verification: uv,
        });
        self.inner.generate(alias, uv).await
    }
    async fn sign(
        &self,
        alias: String,
        message: Vec<u8>,
        prompt: Option<String>,
    ) -> Result<Vec<u8>, PlatformError> {
        let failure = self.fail_sign_with.lock().unwrap().clone();
        let result = match failure {
            Some(e) => Err(e),
            None => {
                self.inner
                    .sign(alias.clone(), message.clone(), prompt.clone())
                    .await
            }
        };
        self.calls.lock().unwrap().push(KeyCall::Sign {
            alias,
            message,
            prompt,
            signed: result.is_ok(),
        });
        result
    }
    async fn delete(&self, alias: String) -> Result<(), PlatformError> {
        self.calls.lock().unwrap().push(KeyCall::Delete {
            alias: alias.clone(),
        });
        let failure = self.fail_delete_with.lock().unwrap().clone();
        match failure {
            Some(e) => Err(e),
            None => self.inner.delete(alias).await,
        }
    }
}

/// Keys in memory (tests only). Returns raw 65-byte keys and 64-byte signatures. Like a
/// platform key store, it asks its verifier before a signature that carries a prompt (the
/// default verifier answers `Verified`).
pub struct MemoryKeyStore {
    keys: Mutex<HashMap<String, Arc<EcdsaSigner>>>,
    verifier: Arc<dyn UserVerifier>,
}

impl Default for MemoryKeyStore {
    fn default() -> Self {
        MemoryKeyStore::with_verifier(Arc::new(AlwaysVerified))
    }
}

impl MemoryKeyStore {
    pub fn with_verifier(verifier: Arc<dyn UserVerifier>) -> Self {
        MemoryKeyStore {
            keys: Mutex::new(HashMap::new()),
            verifier,
        }
    }
    pub fn contains(&self, alias: &str) -> bool {
        self.keys.lock().unwrap().contains_key(alias)
    }
    pub fn len(&self) -> usize {
        self.keys.lock().unwrap().len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait::async_trait]
impl DeviceKeyStore for MemoryKeyStore {
    async fn generate(&self, alias: String, _: bool) -> Result<Vec<u8>, PlatformError> {
        let (signer, _) = EcdsaSigner::generate().map_err(|e| PlatformError::Failed {
            reason: e.to_string(),
        })?;
        let pk = signer.public_key().as_bytes().to_vec();
        let mut keys = self.keys.lock().unwrap();
        if keys.contains_key(&alias) {
            return Err(PlatformError::Failed {
                reason: "alias exists".into(),
            });
        }
        keys.insert(alias, Arc::new(signer));
        Ok(pk)
    }
    async fn sign(
        &self,
        alias: String,
        message: Vec<u8>,
        prompt: Option<String>,
    ) -> Result<Vec<u8>, PlatformError> {
        let key = self.keys.lock().unwrap().get(&alias).cloned();
        let key = key.ok_or(PlatformError::KeyNotFound)?;
        verify_for_signature(self.verifier.as_ref(), prompt).await?;
        Ok(key.sign(&message).as_bytes().to_vec())
    }
    async fn delete(&self, alias: String) -> Result<(), PlatformError> {
        self.keys
            .lock()
            .unwrap()
            .remove(&alias)
            .map(|_| ())
            .ok_or(PlatformError::KeyNotFound)
    }
}

// ---------------------------------------------------------------- fake server

/// Ways the fake server misbehaves (one at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Forgery {
    #[default]
    None,
    /// Answers the enrollment challenge with another key (correctly signed by it): a MITM.
    OtherServerKey,
    /// The challenge signature is made over different bytes.
    BadChallengeSignature,
    /// `enroll/complete` answers 200 with garbage.
    GarbageEnrollComplete,
    /// `enroll/complete` answers with a fixed account id (to provoke a duplicate).
    FixedAccountId,
    /// Details signed by another key.
    BadDetailsSignature,
    /// Validly signed details of a different request.
    DetailsOfOtherRequest,
    /// Validly signed text that is not details JSON.
    SignedGarbageDetails,
    /// 200 with a body that is not JSON at all.
    GarbageBody,
}

struct FakeCode {
    upn: String,
    display_name: String,
    challenge: Option<[u8; 32]>,
    used: bool,
}

struct FakeAccount {
    device_key: PublicKey,
    passwordless_key: Option<PublicKey>,
    /// The push channel of the last accepted rotation (§5.10) and its signed time.
    rotated_push: Option<(wire::PushChannel, UnixMillis)>,
}

struct FakeRequest {
    account_id: AccountId,
    signed: SignedRequestDetails,
    details: RequestDetails,
    number: String,
    status: String,
    wrong: u32,
    last_response: Option<UnixMillis>,
}

#[derive(Default)]
struct FakeState {
    codes: HashMap<String, FakeCode>,
    accounts: HashMap<AccountId, FakeAccount>,
    requests: HashMap<RequestId, FakeRequest>,
    responses: Vec<wire::ResponseBody>,
    forgery: Forgery,
    fixed_account_id: Option<AccountId>,
    /// Digits of the numbers of new requests (2 unless set).
    number_length: Option<u8>,
}

/// How the long-poll waits a `FakeServer` held (with `hold_long_polls(true)`) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PollWaits {
    /// Polls that found nothing pending and started to wait.
    pub started: usize,
    /// Waits ended by a new request for that account (`create_request`).
    pub woken: usize,
    /// Waits that ran their full `wait` seconds.
    pub timed_out: usize,
    /// Waits the client gave up (its request future was dropped).
    pub cancelled: usize,
}

/// An in-process sign-in server at `base` (e.g. `http://127.0.0.1:7001/tenant/`).
/// The offline-fallback TOTP secret every fake enrollment hands out (PROTOCOL.md §5.2), so
/// tests can compute the codes the phone must show.
pub const FAKE_TOTP_SECRET: &[u8; 20] = b"fake-server-totp-key";

fn fake_totp_uri(account: &AccountId) -> String {
    totp_rs::TOTP::new_unchecked(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        FAKE_TOTP_SECRET.to_vec(),
        Some("Fake Server".into()),
        account.to_string(),
    )
    .get_url()
}

pub struct FakeServer {
    pub base: Url,
    pub name: String,
    signer: EcdsaSigner,
    other_signer: EcdsaSigner,
    state: Mutex<FakeState>,
    /// When set, a poll with nothing pending waits (like the real server) for `wait` seconds
    /// or until a request is created. Off by default: polls answer at once.
    hold_long_polls: std::sync::atomic::AtomicBool,
    new_request: tokio::sync::Notify,
    poll_waits: Mutex<PollWaits>,
}

type Reply = (u16, Vec<u8>);

fn reply<T: serde::Serialize>(status: u16, body: &T) -> Reply {
    (status, serde_json::to_vec(body).expect("serializable"))
}

fn error(status: u16, code: ErrorCode) -> Reply {
    reply(
        status,
        &ErrorBody {
            error: code,
            message: format!("fake server: {}", code.as_str()),
            attempts_left: None,
        },
    )
}

fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).unwrap();
    b
}

impl FakeServer {
    pub fn new(name: &str, base: &str) -> Arc<Self> {
        Arc::new(FakeServer {
            base: Url::parse(base).expect("base URL"),
            name: name.to_owned(),
            signer: EcdsaSigner::generate().unwrap().0,
            other_signer: EcdsaSigner::generate().unwrap().0,
            state: Mutex::new(FakeState::default()),
            hold_long_polls: std::sync::atomic::AtomicBool::new(false),
            new_request: tokio::sync::Notify::new(),
            poll_waits: Mutex::new(PollWaits::default()),
        })
    }

    /// Makes polls with nothing pending wait as the real server does (see `PollWaits`).
    pub fn hold_long_polls(&self, hold: bool) {
        self.hold_long_polls.store(hold, Ordering::SeqCst);
    }

    /// How the held long-poll waits ended so far.
    pub fn poll_waits(&self) -> PollWaits {
        *self.poll_waits.lock().unwrap()
    }

    /// Answers a request; a poll with nothing pending is held as the real server does when
    /// `hold_long_polls` is on.
    async fn serve(&self, request: &HttpRequest) -> Reply {
        let is_poll = request.method == HttpMethod::Get
            && request.url.path().ends_with("/api/v1/device/poll");
        if !is_poll || !self.hold_long_polls.load(Ordering::SeqCst) {
            return self.route(request);
        }
        // Created before looking, so a request created in between still wakes it.
        let new_request = self.new_request.notified();
        let answer = self.route(request);
        let nothing_pending = answer.0 == 200
            && serde_json::from_slice::<wire::PollResponse>(&answer.1)
                .is_ok_and(|p| p.pushes.is_empty());
        let wait = request
            .url
            .query_pairs()
            .find(|(k, _)| k == "wait")
            .and_then(|(_, v)| v.parse::<u64>().ok())
            .unwrap_or(0);
        if !nothing_pending || wait == 0 {
            return answer;
        }
        /// Counts the wait as cancelled unless it ended.
        struct Held<'a>(&'a Mutex<PollWaits>, bool);
        impl Drop for Held<'_> {
            fn drop(&mut self) {
                if !self.1 {
                    self.0.lock().unwrap().cancelled += 1;
                }
            }
        }
        self.poll_waits.lock().unwrap().started += 1;
        let mut held = Held(&self.poll_waits, false);
        tokio::pin!(new_request);
        let deadline = tokio::time::sleep(std::time::Duration::from_secs(wait));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut new_request => {
                    let answer = self.route(request);
                    let delivered = serde_json::from_slice::<wire::PollResponse>(&answer.1)
                        .is_ok_and(|p| !p.pushes.is_empty());
                    if delivered {
                        held.1 = true;
                        self.poll_waits.lock().unwrap().woken += 1;
                        return answer;
                    }
                    // A request for another account: keep waiting.
                    new_request.set(self.new_request.notified());
                }
                _ = &mut deadline => {
                    held.1 = true;
                    self.poll_waits.lock().unwrap().timed_out += 1;
                    return self.route(request);
                }
            }
        }
    }

    pub fn public_key(&self) -> PublicKey {
        self.signer.public_key()
    }

    pub fn set_forgery(&self, forgery: Forgery) {
        self.state.lock().unwrap().forgery = forgery;
    }

    /// Makes `enroll/complete` hand out this account id (with `Forgery::FixedAccountId`).
    /// New requests get numbers of `digits` digits (as a policy or an elevated risk asks).
    pub fn set_number_length(&self, digits: u8) {
        self.state.lock().unwrap().number_length = Some(digits);
    }

    pub fn set_fixed_account_id(&self, id: Option<&str>) {
        self.state.lock().unwrap().fixed_account_id = id.map(|i| AccountId::parse(i).unwrap());
    }

    /// A fresh one-time enrollment link for `upn`.
    pub fn enrollment_url(&self, upn: &str, display_name: &str) -> String {
        let code = b64(&random32()[..16]);
        self.state.lock().unwrap().codes.insert(
            code.clone(),
            FakeCode {
                upn: upn.into(),
                display_name: display_name.into(),
                challenge: None,
                used: false,
            },
        );
        EnrollmentUrl {
            server: self.base.clone(),
            code,
            server_fingerprint: self.public_key().fingerprint(),
        }
        .to_url_string()
    }

    pub fn enrolled_accounts(&self) -> usize {
        self.state.lock().unwrap().accounts.len()
    }

    pub fn has_passwordless_key(&self, account_id: &str) -> bool {
        let id = AccountId::parse(account_id).unwrap();
        self.state.lock().unwrap().accounts[&id]
            .passwordless_key
            .is_some()
    }

    /// Starts a sign-in for `account_id`; returns (request id, displayed number).
    pub fn create_request(
        &self,
        account_id: &str,
        kind: RequestKind,
        number_matching: bool,
        ttl_ms: u64,
    ) -> (String, String) {
        let request_id = RequestId::random();
        self.create_request_with(
            account_id,
            request_id.as_str(),
            "My Apps",
            kind,
            number_matching,
            ttl_ms,
        )
    }

    /// Like `create_request`, with a chosen request id and application name: a hostile server
    /// that reuses another server's request ids, or shows any text it likes.
    pub fn create_request_with(
        &self,
        account_id: &str,
        request_id: &str,
        app_name: &str,
        kind: RequestKind,
        number_matching: bool,
        ttl_ms: u64,
    ) -> (String, String) {
        let account_id = AccountId::parse(account_id).unwrap();
        let request_id = RequestId::parse(request_id).unwrap();
        let now = UnixMillis::now();
        let number_length = self.state.lock().unwrap().number_length.unwrap_or(2);
        let details = RequestDetails {
            v: 1,
            request_id: request_id.clone(),
            account_id: account_id.clone(),
            kind,
            upn: "user@fake.test".into(),
            server_name: self.name.clone(),
            app_name: Some(app_name.into()),
            location: Some("Seattle, US".into()),
            device_name: None,
            number_matching,
            number_length,
            nonce: b64(&random32()),
            created_at: now,
            expires_at: UnixMillis(now.0 + ttl_ms),
            browser: None,
        };
        let low = 10u32.pow(u32::from(number_length) - 1);
        let random = u32::from_be_bytes(random32()[..4].try_into().unwrap());
        let number = (low + random % (9 * low)).to_string();
        let signed = SignedRequestDetails::sign(&details, &self.signer);
        self.state.lock().unwrap().requests.insert(
            request_id.clone(),
            FakeRequest {
                account_id,
                signed,
                details,
                number: number.clone(),
                status: "pending".into(),
                wrong: 0,
                last_response: None,
            },
        );
        self.new_request.notify_waiters();
        (request_id.to_string(), number)
    }

    pub fn status(&self, request_id: &str) -> String {
        let id = RequestId::parse(request_id).unwrap();
        self.state.lock().unwrap().requests[&id].status.clone()
    }

    /// The exact details text the server signed for a request.
    pub fn details_text(&self, request_id: &str) -> String {
        let id = RequestId::parse(request_id).unwrap();
        self.state.lock().unwrap().requests[&id]
            .signed
            .details
            .clone()
    }

    /// Accepted response bodies, in order.
    pub fn responses(&self) -> Vec<wire::ResponseBody> {
        self.state.lock().unwrap().responses.clone()
    }

    /// The push envelope the server would send for a request.
    pub fn envelope(&self, account_id: &str, request_id: &str) -> PushEnvelope {
        PushEnvelope::new(
            AccountId::parse(account_id).unwrap(),
            RequestId::parse(request_id).unwrap(),
        )
    }

    fn route(&self, req: &HttpRequest) -> Reply {
        let base = self.base.path().trim_end_matches('/');
        let Some(path) = req.url.path().strip_prefix(base) else {
            return error(404, ErrorCode::InvalidRequest);
        };
        let body = req.body.clone().unwrap_or_default();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (req.method, segments.as_slice()) {
            (HttpMethod::Post, ["api", "v1", "enroll", "challenge"]) => self.challenge(&body),
            (HttpMethod::Post, ["api", "v1", "enroll", "complete"]) => self.complete(&body),
            (HttpMethod::Post, ["api", "v1", "device", "passwordless"]) => self.passwordless(&body),
            (HttpMethod::Post, ["api", "v1", "device", "push"]) => self.rotate_push(&body),
            (HttpMethod::Get, ["api", "v1", "device", "poll"]) => match self.device_auth(req) {
                Ok(account_id) => self.poll(&account_id),
                Err(r) => r,
            },
            (HttpMethod::Get, ["api", "v1", "device", "requests", rid]) => {
                match self.device_auth(req) {
                    Ok(account_id) => self.details(&account_id, rid),
                    Err(r) => r,
                }
            }
            (HttpMethod::Post, ["api", "v1", "device", "requests", rid, "response"]) => {
                self.respond(rid, &body)
            }
            (HttpMethod::Delete, ["api", "v1", "device"]) => match self.device_auth(req) {
                Ok(account_id) => {
                    let mut st = self.state.lock().unwrap();
                    st.accounts.remove(&account_id);
                    st.requests.retain(|_, r| r.account_id != account_id);
                    (204, Vec::new())
                }
                Err(r) => r,
            },
            _ => error(404, ErrorCode::InvalidRequest),
        }
    }

    fn challenge(&self, body: &[u8]) -> Reply {
        let Ok(req) = serde_json::from_slice::<wire::EnrollChallengeRequest>(body) else {
            return error(400, ErrorCode::InvalidRequest);
        };
        let mut st = self.state.lock().unwrap();
        let forgery = st.forgery;
        let Some(code) = st.codes.get_mut(&req.code).filter(|c| !c.used) else {
            return error(400, ErrorCode::InvalidCode);
        };
        let challenge = EnrollChallenge {
            challenge: random32(),
            upn: code.upn.clone(),
            display_name: code.display_name.clone(),
            server_name: self.name.clone(),
            expires_at: UnixMillis::now().plus_secs(600),
        };
        code.challenge = Some(challenge.challenge);
        let key = if forgery == Forgery::OtherServerKey {
            &self.other_signer
        } else {
            &self.signer
        };
        let signed_code = if forgery == Forgery::BadChallengeSignature {
            "another code"
        } else {
            req.code.as_str()
        };
        let signature = key.sign(&challenge.signed_bytes(signed_code));
        reply(
            200,
            &wire::EnrollChallengeResponse {
                challenge: b64(&challenge.challenge),
                upn: challenge.upn,
                display_name: challenge.display_name,
                server_name: challenge.server_name,
                expires_at: challenge.expires_at,
                server_public_key: key.public_key().to_b64(),
                signature: signature.to_b64(),
            },
        )
    }

    fn complete(&self, body: &[u8]) -> Reply {
        let Ok(req) = serde_json::from_slice::<wire::EnrollCompleteRequest>(body) else {
            return error(400, ErrorCode::InvalidRequest);
        };
        // As the real server: a kind other than longpoll/apns/fcm is `invalid_request`.
        if req.push.parsed_kind().is_err() {
            return error(400, ErrorCode::InvalidRequest);
        }
        let mut st = self.state.lock().unwrap();
        let Some(code) = st.codes.get_mut(&req.code).filter(|c| !c.used) else {
            return error(400, ErrorCode::InvalidCode);
        };
        let Some(challenge) = code.challenge else {
            return error(400, ErrorCode::InvalidCode);
        };
        if !ct_eq(b64(&challenge).as_bytes(), req.challenge.as_bytes()) {
            return error(400, ErrorCode::InvalidCode);
        }
        let (Ok(device_key), Ok(signature)) = (
            PublicKey::from_b64("device_public_key", &req.device_public_key),
            Signature::from_b64("signature", &req.signature),
        ) else {
            return error(400, ErrorCode::InvalidRequest);
        };
        let proof = EnrollProof {
            challenge,
            device_public_key: device_key.clone(),
            push_kind: req.push.kind.clone(),
            push_token: req.push.token.clone(),
            device_name: req.device_name.clone(),
            timestamp: req.timestamp,
        };
        if device_key
            .verify(&proof.signed_bytes(), &signature)
            .is_err()
        {
            return error(401, ErrorCode::BadSignature);
        }
        if req.timestamp.distance(UnixMillis::now()) > MAX_CLOCK_SKEW_MS {
            return error(401, ErrorCode::StaleTimestamp);
        }
        code.used = true;
        let forgery = st.forgery;
        if forgery == Forgery::GarbageEnrollComplete {
            return (200, b"{\"account_id\": 42}".to_vec());
        }
        let account_id = match (forgery, &st.fixed_account_id) {
            (Forgery::FixedAccountId, Some(id)) => id.clone(),
            _ => AccountId::random(),
        };
        st.accounts.insert(
            account_id.clone(),
            FakeAccount {
                device_key,
                passwordless_key: None,
                rotated_push: None,
            },
        );
        reply(
            200,
            &wire::EnrollCompleteResponse {
                totp_uri: Some(fake_totp_uri(&account_id)),
                account_id,
            },
        )
    }

    /// §5.10: the device key's signature over exactly the body, then newer than the last.
    fn rotate_push(&self, body: &[u8]) -> Reply {
        let Ok(req) = serde_json::from_slice::<
            authenticator_protocol::push_registration::PushRegistrationRequest,
        >(body) else {
            return error(400, ErrorCode::InvalidRequest);
        };
        let mut st = self.state.lock().unwrap();
        let Some(account) = st.accounts.get_mut(&req.account_id) else {
            return error(404, ErrorCode::UnknownAccount);
        };
        let Ok(sig) = Signature::from_b64("signature", &req.signature) else {
            return error(400, ErrorCode::InvalidRequest);
        };
        if account
            .device_key
            .verify(&req.update().signed_bytes(), &sig)
            .is_err()
        {
            return error(401, ErrorCode::BadSignature);
        }
        if account
            .rotated_push
            .as_ref()
            .is_some_and(|(_, at)| *at >= req.timestamp)
        {
            return error(409, ErrorCode::Replay);
        }
        account.rotated_push = Some((req.push.clone(), req.timestamp));
        (204, Vec::new())
    }

    /// The server forgets the account (an admin removed the device there).
    pub fn forget_account(&self, account_id: &str) {
        let id = AccountId::parse(account_id).unwrap();
        self.state.lock().unwrap().accounts.remove(&id);
    }

    /// The push channel (kind, token) of the account's last accepted rotation, if any.
    pub fn rotated_push(&self, account_id: &str) -> Option<(String, String)> {
        let id = AccountId::parse(account_id).unwrap();
        self.state.lock().unwrap().accounts[&id]
            .rotated_push
            .as_ref()
            .map(|(p, _)| (p.kind.clone(), p.token.clone()))
    }

    fn passwordless(&self, body: &[u8]) -> Reply {
        let Ok(req) = serde_json::from_slice::<wire::PasswordlessRequest>(body) else {
            return error(400, ErrorCode::InvalidRequest);
        };
        let mut st = self.state.lock().unwrap();
        let Some(account) = st.accounts.get_mut(&req.account_id) else {
            return error(404, ErrorCode::UnknownAccount);
        };
        let (Ok(key), Ok(dsig), Ok(ksig)) = (
            PublicKey::from_b64("passwordless_public_key", &req.passwordless_public_key),
            Signature::from_b64("device_signature", &req.device_signature),
            Signature::from_b64("key_signature", &req.key_signature),
        ) else {
            return error(400, ErrorCode::InvalidRequest);
        };
        let bytes = PasswordlessKeyRegistration {
            account_id: req.account_id.clone(),
            passwordless_public_key: key.clone(),
            timestamp: req.timestamp,
        }
        .signed_bytes();
        if account.device_key.verify(&bytes, &dsig).is_err() || key.verify(&bytes, &ksig).is_err() {
            return error(401, ErrorCode::BadSignature);
        }
        account.passwordless_key = Some(key);
        (204, Vec::new())
    }

    fn device_auth(&self, req: &HttpRequest) -> Result<AccountId, Reply> {
        let header = req
            .authorization
            .as_deref()
            .ok_or_else(|| error(401, ErrorCode::Unauthorized))?;
        let auth =
            DeviceAuth::parse_header(header).map_err(|_| error(401, ErrorCode::Unauthorized))?;
        let st = self.state.lock().unwrap();
        let account = st
            .accounts
            .get(&auth.account_id)
            .ok_or_else(|| error(404, ErrorCode::UnknownAccount))?;
        if auth.timestamp.distance(UnixMillis::now()) > MAX_CLOCK_SKEW_MS {
            return Err(error(401, ErrorCode::StaleTimestamp));
        }
        let message = DeviceAuth::signed_bytes(
            req.method.as_str(),
            &path_and_query(&req.url),
            &auth.account_id,
            auth.timestamp,
        );
        account
            .device_key
            .verify(&message, &auth.signature)
            .map_err(|_| error(401, ErrorCode::BadSignature))?;
        Ok(auth.account_id)
    }

    fn poll(&self, account_id: &AccountId) -> Reply {
        let st = self.state.lock().unwrap();
        let now = UnixMillis::now();
        let pushes = st
            .requests
            .iter()
            .filter(|(_, r)| {
                r.account_id == *account_id
                    && r.status == "pending"
                    && !r.details.expires_at.is_expired_at(now)
            })
            .map(|(id, r)| PushEnvelope::new(r.account_id.clone(), id.clone()))
            .collect();
        reply(200, &wire::PollResponse { pushes })
    }

    fn details(&self, account_id: &AccountId, rid: &str) -> Reply {
        let st = self.state.lock().unwrap();
        let Some((id, request)) = RequestId::parse(rid)
            .ok()
            .and_then(|id| st.requests.get(&id).map(|r| (id, r)))
            .filter(|(_, r)| r.account_id == *account_id)
        else {
            return error(404, ErrorCode::UnknownRequest);
        };
        if request.details.expires_at.is_expired_at(UnixMillis::now()) {
            return error(410, ErrorCode::RequestExpired);
        }
        if request.status != "pending" {
            return error(409, ErrorCode::RequestNotPending);
        }
        match st.forgery {
            Forgery::BadDetailsSignature => reply(
                200,
                &SignedRequestDetails::sign(&request.details, &self.other_signer),
            ),
            Forgery::DetailsOfOtherRequest => {
                let mut other = request.details.clone();
                other.request_id = RequestId::random();
                reply(200, &SignedRequestDetails::sign(&other, &self.signer))
            }
            Forgery::SignedGarbageDetails => {
                let text = "{\"v\":1,\"hello\":true}".to_owned();
                let signature = self
                    .signer
                    .sign(&authenticator_protocol::sign_in::request_details_signed_bytes(&text))
                    .to_b64();
                reply(
                    200,
                    &SignedRequestDetails {
                        details: text,
                        signature,
                    },
                )
            }
            Forgery::GarbageBody => (200, b"<html>hello</html>".to_vec()),
            _ => {
                let _ = id;
                reply(200, &request.signed)
            }
        }
    }

    fn respond(&self, rid: &str, body: &[u8]) -> Reply {
        let Ok(req) = serde_json::from_slice::<wire::ResponseBody>(body) else {
            return error(400, ErrorCode::InvalidRequest);
        };
        let mut st = self.state.lock().unwrap();
        let Some(request_id) = RequestId::parse(rid).ok() else {
            return error(404, ErrorCode::UnknownRequest);
        };
        let passwordless_key = st
            .accounts
            .get(&req.account_id)
            .and_then(|a| a.passwordless_key.clone());
        let device_key = st
            .accounts
            .get(&req.account_id)
            .map(|a| a.device_key.clone());
        let Some(request) = st
            .requests
            .get_mut(&request_id)
            .filter(|r| r.account_id == req.account_id)
        else {
            return error(404, ErrorCode::UnknownRequest);
        };
        let now = UnixMillis::now();
        if request.details.expires_at.is_expired_at(now) {
            return error(410, ErrorCode::RequestExpired);
        }
        if request.status != "pending" {
            return error(409, ErrorCode::RequestNotPending);
        }
        use authenticator_protocol::sign_in::Decision as D;
        // §6.3, the rule the real server applies.
        let key = device_key.and_then(|device| {
            select_response_key(request.details.kind, req.decision, device, passwordless_key).ok()
        });
        let Some(key) = key else {
            return error(403, ErrorCode::KeyNotAllowed);
        };
        let typed = match req
            .typed_number
            .as_deref()
            .map(TypedNumber::parse)
            .transpose()
        {
            Ok(t) => t,
            Err(_) => return error(400, ErrorCode::InvalidRequest),
        };
        let (Ok(nonce), Ok(context), Ok(signature)) = (
            unb64_fixed::<32>("nonce", &req.nonce),
            unb64_fixed::<32>("context_sha256", &req.context_sha256),
            Signature::from_b64("signature", &req.signature),
        ) else {
            return error(400, ErrorCode::InvalidRequest);
        };
        let response = SignInResponse {
            request_id: request_id.clone(),
            account_id: req.account_id.clone(),
            nonce,
            decision: req.decision,
            typed_number: typed.clone(),
            context_sha256: context,
            timestamp: req.timestamp,
            browser_origin: None,
        };
        if key.verify(&response.signed_bytes(), &signature).is_err() {
            return error(401, ErrorCode::BadSignature);
        }
        if Some(nonce.to_vec()) != unb64("nonce", &request.details.nonce).ok()
            || context != request.signed.context_sha256()
        {
            return error(401, ErrorCode::BadSignature);
        }
        // §5.6 step 4, as the real server: the window first, then "later than the last".
        if req.timestamp.distance(now) > MAX_CLOCK_SKEW_MS {
            return error(401, ErrorCode::StaleTimestamp);
        }
        if request.last_response.is_some_and(|t| t >= req.timestamp) {
            return error(409, ErrorCode::Replay);
        }
        request.last_response = Some(req.timestamp);
        if req.decision == D::Approve && request.details.number_matching {
            let right = typed
                .as_ref()
                .is_some_and(|t| ct_eq(t.as_str().as_bytes(), request.number.as_bytes()));
            if !right {
                request.wrong += 1;
                if request.wrong >= wire::MAX_WRONG_NUMBERS {
                    request.status = "failed".into();
                    return error(400, ErrorCode::RequestFailed);
                }
                return reply(
                    400,
                    &ErrorBody {
                        error: ErrorCode::WrongNumber,
                        message: "wrong number".into(),
                        attempts_left: Some(wire::MAX_WRONG_NUMBERS - request.wrong),
                    },
                );
            }
        }
        let status = match req.decision {
            D::Approve => "approved",
            D::Deny => "denied",
            D::Report => "reported",
        };
        request.status = status.into();
        st.responses.push(req);
        reply(
            200,
            &wire::ResponseAccepted {
                status: status.into(),
            },
        )
    }
}

/// Routes requests to fake servers by base URL; anything else "cannot connect".
#[derive(Default)]
pub struct FakeNetwork {
    servers: Mutex<Vec<Arc<FakeServer>>>,
    requests: AtomicUsize,
}

impl FakeNetwork {
    pub fn new(servers: &[Arc<FakeServer>]) -> Arc<Self> {
        Arc::new(FakeNetwork {
            servers: Mutex::new(servers.to_vec()),
            requests: AtomicUsize::new(0),
        })
    }
    /// How many HTTP requests were sent.
    pub fn request_count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl HttpTransport for FakeNetwork {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let server = self
            .servers
            .lock()
            .unwrap()
            .iter()
            .find(|s| request.url.as_str().starts_with(s.base.as_str()))
            .cloned();
        let server = server.ok_or_else(|| TransportError::Failed("could not connect".into()))?;
        let (status, body) = server.serve(&request).await;
        Ok(HttpResponse { status, body })
    }
}
