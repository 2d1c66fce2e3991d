//! Harness for the end-to-end tests: a real `signin-server` on `127.0.0.1:0` with a real SQLite
//! file, phones built on `authenticator-core` (software keys, scripted verifiers), the browser
//! side of the sign-in page, a recording proxy (the network attacker's view), a tap on the
//! Authenticator's browser listener (what the page sent it) and a raw device that speaks the
//! protocol by hand (the attacker's own account).
#![forbid(unsafe_code)]

pub mod apache;
pub mod browser;
pub mod chromium;
pub mod proxy;
pub mod raw_device;
pub mod relay;
pub mod tap;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use authenticator_core::testing::AlwaysVerified;
use authenticator_core::{
    AccountSummary, Authenticator, AuthenticatorError, Decision, DeviceKeyStore, PendingRequest,
    PushKind, PushRegistration, SoftwareKeyStore, UserVerifier, WrappingKeySource,
};
use serde_json::{json, Value};
use signin_domain::accounts;
use signin_domain::rules::policy::{Mode, PolicyUpdate, Target};
use signin_domain::store::testing::TestDatabase;
use signin_server::{RunningServer, ServeConfig};

/// A sign-in server on a loopback port, its SQLite file in a temporary directory (or a fresh
/// PostgreSQL database when `TEST_DATABASE_URL` is set: see `signin_domain::store::testing`).
pub struct TestServer {
    pub base_url: String,
    pub running: RunningServer,
    pub browser: reqwest::Client,
    pub db: Arc<TestDatabase>,
    /// The registered application "My Apps" that starts sign-ins (client id, secret).
    pub app: (String, String),
}

impl TestServer {
    pub async fn start(name: &str) -> Result<Self> {
        Self::start_with_ttl(name, authenticator_protocol::wire::DEFAULT_REQUEST_TTL_SECS).await
    }

    pub async fn start_with_ttl(name: &str, request_ttl_secs: u64) -> Result<Self> {
        let db = Arc::new(TestDatabase::create().await?);
        let server = Self::start_on(db, name, request_ttl_secs).await?;
        server.set_policy(Mode::Any).await?;
        Ok(server)
    }

    /// A server (policy: any mode) that also pushes through `push` (APNs, FCM, Web Push).
    pub async fn start_with_push(
        name: &str,
        push: signin_domain::delivery::push::PushConfig,
    ) -> Result<Self> {
        let db = Arc::new(TestDatabase::create().await?);
        let ttl = authenticator_protocol::wire::DEFAULT_REQUEST_TTL_SECS;
        let server = Self::start_on_with_push(db, name, ttl, push).await?;
        server.set_policy(Mode::Any).await?;
        Ok(server)
    }

    /// Another server instance on the same database (PostgreSQL: instances share work).
    pub async fn start_on(
        db: Arc<TestDatabase>,
        name: &str,
        request_ttl_secs: u64,
    ) -> Result<Self> {
        Self::start_on_with_push(db, name, request_ttl_secs, Default::default()).await
    }

    async fn start_on_with_push(
        db: Arc<TestDatabase>,
        name: &str,
        request_ttl_secs: u64,
        push: signin_domain::delivery::push::PushConfig,
    ) -> Result<Self> {
        Self::start_on_configured(db, name, request_ttl_secs, |c| ServeConfig { push, ..c }).await
    }

    /// A server (policy: any mode) whose configuration `configure` adjusts.
    pub async fn start_configured(
        name: &str,
        configure: impl FnOnce(ServeConfig) -> ServeConfig,
    ) -> Result<Self> {
        let db = Arc::new(TestDatabase::create().await?);
        let ttl = authenticator_protocol::wire::DEFAULT_REQUEST_TTL_SECS;
        let server = Self::start_on_configured(db, name, ttl, configure).await?;
        server.set_policy(Mode::Any).await?;
        Ok(server)
    }

    async fn start_on_configured(
        db: Arc<TestDatabase>,
        name: &str,
        request_ttl_secs: u64,
        configure: impl FnOnce(ServeConfig) -> ServeConfig,
    ) -> Result<Self> {
        let config = ServeConfig {
            listen: ([127, 0, 0, 1], 0).into(),
            database: db.url.clone(),
            server_name: Some(name.into()),
            request_ttl_secs,
            // The ceremony suites start many sign-ins per user; the anti-fatigue limits have
            // their own tests (signin-server/tests/push.rs). Reports still pause the user.
            risk: signin_domain::rules::risk::RiskConfig {
                burst: 1000,
                ..Default::default()
            },
            ..ServeConfig::default()
        };
        let running = signin_server::spawn(configure(config)).await?;
        // One "My Apps" per database; another instance on it registers its own name.
        let registered = match accounts::applications::add(running.pool(), "My Apps").await {
            Ok(r) => r,
            Err(_) => {
                let name = format!("My Apps via {}", running.addr);
                accounts::applications::add(running.pool(), &name).await?
            }
        };
        Ok(TestServer {
            base_url: format!("http://{}/", running.addr),
            running,
            browser: reqwest::Client::new(),
            db,
            app: (
                registered.client_id.clone(),
                registered.client_secret.clone(),
            ),
        })
    }

    pub async fn set_policy(&self, mode: Mode) -> Result<()> {
        let update = PolicyUpdate {
            enabled: Some(true),
            target: Some(Target::All),
            mode: Some(mode),
            number_matching: Some(true),
            show_app_name: Some(true),
            show_location: Some(true),
            new_device_approval: None,
            number_length: None,
            phishing_resistant: None,
            exclude: None,
            ..Default::default()
        };
        accounts::set_policy(self.running.pool(), &update).await?;
        Ok(())
    }

    /// Adds the user and returns a fresh registration link for them.
    pub async fn user_with_link(&self, upn: &str, name: &str) -> Result<String> {
        accounts::add_user(self.running.pool(), upn, name, &[]).await?;
        self.link(upn).await
    }

    pub async fn link(&self, upn: &str) -> Result<String> {
        self.link_naming(upn, &self.base_url).await
    }

    /// Adds the user and returns a registration link that names `server_url` as the server
    /// (a proxy in front of this one: the phone then talks to it).
    pub async fn user_with_link_naming(
        &self,
        upn: &str,
        name: &str,
        server_url: &str,
    ) -> Result<String> {
        accounts::add_user(self.running.pool(), upn, name, &[]).await?;
        self.link_naming(upn, server_url).await
    }

    async fn link_naming(&self, upn: &str, server_url: &str) -> Result<String> {
        let url = url::Url::parse(server_url)?;
        accounts::registration_link(self.running.pool(), upn, &url, 600).await
    }

    /// `POST /api/v1/signin`; returns `(id, number)`.
    pub async fn start_sign_in(&self, upn: &str) -> Result<(String, String)> {
        let body = self.start_sign_in_raw(upn).await?;
        if body["id"].is_null() {
            bail!("sign-in refused: {body}");
        }
        Ok((
            body["id"].as_str().context("id")?.to_owned(),
            body["number"].as_str().context("number")?.to_owned(),
        ))
    }

    pub async fn start_sign_in_raw(&self, upn: &str) -> Result<Value> {
        let resp = self
            .browser
            .post(format!("{}api/v1/signin", self.base_url))
            .basic_auth(&self.app.0, Some(&self.app.1))
            .json(&json!({ "upn": upn }))
            .send()
            .await?;
        Ok(resp.json().await?)
    }

    /// The sign-in page's view of the request.
    pub async fn status(&self, id: &str) -> Result<String> {
        let body: Value = self
            .browser
            .get(format!("{}api/v1/signin/{id}", self.base_url))
            .timeout(Duration::from_secs(10))
            .send()
            .await?
            .json()
            .await?;
        Ok(body["status"].as_str().context("status")?.to_owned())
    }
}

/// A phone: `authenticator-core` with an in-memory-wrapped software key store in its own data
/// directory.
pub struct TestPhone {
    pub core: Arc<Authenticator>,
    _dir: tempfile::TempDir,
}

impl TestPhone {
    pub fn new() -> Result<Self> {
        Self::with_verifier(Arc::new(AlwaysVerified))
    }

    pub fn with_verifier(verifier: Arc<dyn UserVerifier>) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let keys = Arc::new(SoftwareKeyStore::open(
            dir.path().join("keys"),
            WrappingKeySource::Memory,
            verifier,
        )?);
        let core = Authenticator::new(dir.path().to_string_lossy().into_owned(), keys)?;
        Ok(TestPhone { core, _dir: dir })
    }

    /// A phone whose software key store also seals TOTP secrets: it keeps the offline
    /// fallback's TOTP secret that comes with each enrollment.
    pub fn with_totp() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let keys = Arc::new(SoftwareKeyStore::open(
            dir.path().join("keys"),
            WrappingKeySource::Memory,
            Arc::new(AlwaysVerified),
        )?);
        let core = Authenticator::with_secret_store(
            dir.path().join("data").to_string_lossy().into_owned(),
            keys.clone(),
            keys,
        )?;
        Ok(TestPhone { core, _dir: dir })
    }

    /// The TOTP code this phone shows now for `account_id` (the offline fallback).
    pub async fn totp_code_for(&self, account_id: &str) -> Result<String> {
        let totp = self
            .core
            .totp_accounts()
            .await?
            .into_iter()
            .find(|t| t.account_id.as_deref() == Some(account_id))
            .context("no TOTP secret for the account")?;
        Ok(self.core.totp_code(totp.totp_id).await?.code)
    }

    /// Enrolls from a registration link (long-poll, no phone sign-in); the account id.
    pub async fn enroll(&self, link: &str, name: &str) -> Result<String> {
        let account = self
            .core
            .enroll(
                link.into(),
                name.into(),
                PushRegistration {
                    kind: PushKind::LongPoll,
                    token: String::new(),
                },
            )
            .await?;
        Ok(account.account_id)
    }

    /// A phone over `keys`, which verify the user themselves.
    pub fn with(keys: Arc<dyn DeviceKeyStore>) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let core = Authenticator::new(dir.path().to_string_lossy().into_owned(), keys)?;
        Ok(TestPhone { core, _dir: dir })
    }

    /// The account a request belongs to, for tests that hold only its id: the account that
    /// has it pending, else the phone's only account.
    pub async fn account_for(&self, request_id: &str) -> Result<String> {
        let pending = self.core.pending_requests().await?;
        if let Some(r) = pending.iter().find(|r| r.request_id == request_id) {
            return Ok(r.account_id.clone());
        }
        match self.core.accounts().await?.as_slice() {
            [only] => Ok(only.account_id.clone()),
            _ => bail!("request {request_id} is not pending and the phone has several accounts"),
        }
    }

    /// `approve` of the request's account (see [`TestPhone::account_for`]).
    pub async fn approve(
        &self,
        request_id: String,
        typed_number: String,
    ) -> Result<Decision, AuthenticatorError> {
        let account = self.account_for(&request_id).await.map_err(internal)?;
        self.core.approve(account, request_id, typed_number).await
    }

    pub async fn deny(&self, request_id: String) -> Result<Decision, AuthenticatorError> {
        let account = self.account_for(&request_id).await.map_err(internal)?;
        self.core.deny(account, request_id).await
    }

    pub async fn report_fraud(&self, request_id: String) -> Result<Decision, AuthenticatorError> {
        let account = self.account_for(&request_id).await.map_err(internal)?;
        self.core.report_fraud(account, request_id).await
    }

    /// The newest request that reaches this phone (long-poll), which must name the
    /// application `app` (the client the sign-in is for).
    pub async fn request_from(&self, app: &str) -> Result<PendingRequest> {
        for _ in 0..10 {
            let mut pending = self.core.poll(5).await?;
            pending.sort_by_key(|r| r.created_at_ms);
            if let Some(r) = pending.pop() {
                if r.app_name.as_deref() != Some(app) {
                    bail!("the phone names {:?}, not {app:?}", r.app_name);
                }
                return Ok(r);
            }
        }
        bail!("no request reached the phone")
    }

    /// The request the sign-in page in `page` waits for (`data-request-id`), as it reached
    /// this phone (long-poll).
    pub async fn request_on_page(&self, page: &chromium::Chromium) -> Result<PendingRequest> {
        let id = page.sign_in_id().await?;
        for _ in 0..5 {
            let pending = self.core.poll(5).await?;
            if let Some(r) = pending.into_iter().find(|r| r.request_id == id) {
                return Ok(r);
            }
        }
        bail!("the request did not reach the phone")
    }

    /// Enrolls from a registration link and enables phone sign-in.
    pub async fn enroll_passwordless(&self, link: &str) -> Result<AccountSummary> {
        let account = self
            .core
            .enroll(
                link.into(),
                "Test phone".into(),
                PushRegistration {
                    kind: PushKind::LongPoll,
                    token: String::new(),
                },
            )
            .await?;
        Ok(self.core.enable_phone_sign_in(account.account_id).await?)
    }
}

fn internal(e: anyhow::Error) -> AuthenticatorError {
    AuthenticatorError::Internal {
        reason: e.to_string(),
    }
}
