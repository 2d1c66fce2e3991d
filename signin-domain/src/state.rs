//! Shared state of the handlers: cheap to clone (one `Arc`).
use std::ops::Deref;
use std::sync::Arc;

use authenticator_protocol::EcdsaSigner;
use tokio::sync::watch;

use crate::accounts::passwords::{PasswordGuard, PasswordLimits};
use crate::delivery::parking::{Parking, ParkingLimits};
use crate::delivery::push::{Dispatcher, RetryPolicy, Transport};
use crate::delivery::{LongPoll, Waiters};
use crate::outbound::OutboundPolicy;
use crate::rules::location::{Locator, NoGeoIp};
use crate::rules::risk::RiskConfig;
use crate::settings::Settings;
use crate::store::cache::Cache;
use crate::store::group_commit::Writer;
use crate::store::Pool;
use ipnet::IpNet;

/// The handlers' state: one pointer to [`Shared`] (its fields are read through `Deref`), so a
/// clone, which every request and every parked long-poll holds, costs 8 bytes and one reference
/// count rather than a copy of every field (issue 24: axum keeps a handler's state and its
/// `State` argument in the request's future for as long as the request waits).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] points to.
#[derive(Clone)]
pub struct Shared {
    pub pool: Pool,
    /// Runs the hot path's write units, group-committed on SQLite (`store::group_commit`).
    pub writer: Writer,
    /// Copies of what rarely changes (policy, applications, groups, device keys): see
    /// `store::cache` for when each is checked.
    pub cache: Arc<Cache>,
    pub signer: Arc<EcdsaSigner>,
    pub settings: Arc<Settings>,
    pub longpoll: Arc<LongPoll>,
    /// Sign-in pages waiting for a request to leave `pending`.
    pub request_waiters: Arc<Waiters>,
    /// Bounds on the long-polls waiting on `longpoll` and `request_waiters`.
    pub parking: Arc<Parking>,
    pub locator: Arc<dyn Locator>,
    /// Wakes devices: long-poll always, APNs/FCM when configured.
    pub dispatcher: Dispatcher,
    /// Anti-fatigue limits and the pause after a report.
    pub risk: Arc<RiskConfig>,
    /// Bounds Argon2 concurrency and throttles password attempts per user and address.
    pub passwords: Arc<PasswordGuard>,
    /// Proxies whose `X-Forwarded-For` is believed (none by default).
    pub trusted_proxies: Arc<Vec<IpNet>>,
    /// What the server may call on someone's say-so (Web Push endpoints at enrollment, CIBA
    /// pings) and the cap on push channels per user. The Web Push client carries its own copy.
    pub outbound: Arc<OutboundPolicy>,
    pub shutdown: watch::Receiver<bool>,
    shutdown_tx: Arc<watch::Sender<bool>>,
}

impl AppState {
    /// State over an opened (migrated) database; loads or creates the server key.
    pub async fn new(pool: Pool, settings: Settings) -> anyhow::Result<Self> {
        let signer = crate::store::server_signer(&pool).await?;
        let longpoll = Arc::new(LongPoll::default());
        let dispatcher = Dispatcher::new(
            pool.clone(),
            longpoll.clone(),
            Vec::new(),
            RetryPolicy::default(),
        );
        let (shutdown_tx, shutdown) = watch::channel(false);
        Ok(AppState(Arc::new(Shared {
            writer: Writer::start(pool.clone()),
            pool,
            cache: Arc::new(Cache::default()),
            signer: Arc::new(signer),
            settings: Arc::new(settings),
            dispatcher,
            risk: Arc::new(RiskConfig::default()),
            passwords: Arc::new(PasswordGuard::default()),
            trusted_proxies: Arc::new(Vec::new()),
            outbound: Arc::new(OutboundPolicy::default()),
            longpoll,
            request_waiters: Arc::new(Waiters::default()),
            parking: Arc::new(Parking::default()),
            locator: Arc::new(NoGeoIp),
            shutdown,
            shutdown_tx: Arc::new(shutdown_tx),
        })))
    }

    /// The fields, to set one while building (a copy if the state is already shared).
    fn fields(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.0)
    }

    pub fn with_locator(mut self, locator: Arc<dyn Locator>) -> Self {
        self.fields().locator = locator;
        self
    }

    /// Push clients (APNs, FCM) beside long-poll.
    pub fn with_push(mut self, transports: Vec<Arc<dyn Transport>>, retry: RetryPolicy) -> Self {
        self.fields().dispatcher =
            Dispatcher::new(self.pool.clone(), self.longpoll.clone(), transports, retry);
        self
    }

    pub fn with_risk(mut self, config: RiskConfig) -> Self {
        self.fields().risk = Arc::new(config);
        self
    }

    /// Password-check limits (a fresh guard: concurrency bound and empty buckets).
    pub fn with_password_limits(mut self, limits: PasswordLimits) -> Self {
        self.fields().passwords = Arc::new(PasswordGuard::new(limits));
        self
    }

    /// Bounds on waiting long-polls (fresh counts).
    pub fn with_parking_limits(mut self, limits: ParkingLimits) -> Self {
        self.fields().parking = Arc::new(Parking::new(limits));
        self
    }

    pub fn with_trusted_proxies(mut self, proxies: Vec<IpNet>) -> Self {
        self.fields().trusted_proxies = Arc::new(proxies);
        self
    }

    /// The outbound policy (default: https to public addresses only).
    pub fn with_outbound(mut self, policy: OutboundPolicy) -> Self {
        self.fields().outbound = Arc::new(policy);
        self
    }

    /// Ends every long-poll now (graceful shutdown does not wait for them).
    pub fn begin_shutdown(&self) {
        let _ = self.shutdown_tx.send(true);
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("signer", &self.signer)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}
