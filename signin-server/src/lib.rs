//! The reference sign-in service of the phone sign-in protocol (docs/PROTOCOL.md, server side).
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod api;
pub mod config;
pub mod embedded;
pub mod error;
pub mod extract;
pub mod http_error;
pub mod listener;
pub mod oidc;
/// Local APNs and FCM endpoints for tests (feature `testing`), as `webpush_local`.
#[cfg(feature = "testing")]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub mod push_local;
pub mod request_log;
pub mod statements;
pub mod web;
/// A local Web Push service for tests (an HTTP server, so not under `delivery/`). Test
/// equipment only (feature `testing`): there, a failed `expect` is a failed test.
#[cfg(feature = "testing")]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub mod webpush_local;

use std::io::Write;

use anyhow::Context;
use authenticator_protocol::wire::{
    DEVICE_PATH, ENROLL_CHALLENGE_PATH, ENROLL_COMPLETE_PATH, PASSWORDLESS_PATH, POLL_PATH,
};
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::Router;
use signin_domain::{rules, store};

pub use config::{ServeConfig, Settings};
pub use embedded::{spawn, RunningServer};
pub use error::HttpError;
pub use signin_domain::{AppError, AppState};

/// Request bodies are small JSON documents.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The HTTP API (PROTOCOL.md §5 and §7) plus `GET /healthz`.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/debug/statements", get(statement_count))
        .route("/debug/commits", get(commit_count))
        .route(ENROLL_CHALLENGE_PATH, post(api::enroll::challenge))
        .route(ENROLL_COMPLETE_PATH, post(api::enroll::complete))
        .route(
            authenticator_protocol::moving::MOVE_VOUCH_PATH,
            post(api::moving::vouch),
        )
        .route(
            authenticator_protocol::moving::MOVE_CLAIM_PATH,
            post(api::moving::claim),
        )
        .route(PASSWORDLESS_PATH, post(api::device::passwordless))
        .route(POLL_PATH, get(api::device::poll))
        .route(DEVICE_PATH, delete(api::device::unregister))
        .route(
            authenticator_protocol::push_registration::PUSH_REGISTRATION_PATH,
            post(api::push::update),
        )
        .route(
            "/api/v1/device/requests/{id}",
            get(api::device::request_details),
        )
        .route(
            "/api/v1/device/requests/{id}/response",
            post(api::device::respond),
        )
        .route("/api/v1/signin", post(api::signin::start))
        .route("/api/v1/signin/{id}", get(api::signin::status))
        .merge(web::routes())
        .merge(oidc::routes(state.clone()))
        .fallback(|| async { HttpError(AppError::NotFound) })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(request_log::LogRequestsLayer)
        .with_state(state)
}

/// `GET /debug/statements`: the number of SQL statements run so far, when the server was
/// started with `SIGNIN_COUNT_STATEMENTS=1` (for `cargo xtask bench`); otherwise not found.
async fn statement_count() -> Result<String, HttpError> {
    statements::count()
        .map(|n| n.to_string())
        .ok_or(HttpError(AppError::NotFound))
}

/// `GET /debug/commits`: `units commits`, the write units committed so far and the commits
/// they took (group commit: under load one commit carries several), when counting is on as for
/// `/debug/statements`; otherwise not found.
async fn commit_count(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<String, HttpError> {
    statements::count().ok_or(HttpError(AppError::NotFound))?;
    let (units, commits) = state.writer.committed();
    Ok(format!("{units} {commits}"))
}

/// Opens the database, applies the `serve` settings and returns the handler state.
pub async fn prepare(config: &ServeConfig) -> anyhow::Result<AppState> {
    config.check()?;
    let pool = store::connect(&config.database).await?;
    // User names compare ignoring case: a database from before is brought to the rule, or
    // the server refuses to start, naming the users to rename.
    signin_domain::accounts::normalize_upns(&pool).await?;
    if let Some(name) = &config.server_name {
        store::set_setting(&pool, store::SERVER_NAME_SETTING, name).await?;
    }
    if let Some(ttl) = config.enrollment_ttl_secs {
        store::set_setting(&pool, store::ENROLLMENT_TTL_SETTING, &ttl.to_string()).await?;
    }
    if let Some(url) = &config.public_url {
        store::set_setting(&pool, web::PUBLIC_URL_SETTING, url.as_str()).await?;
    }
    let settings = Settings {
        server_name: store::server_name(&pool).await?,
        request_ttl_secs: config.request_ttl_secs,
        browser_listener_port: config.browser_listener_port,
    };
    // The effective settings, without the database URL (it may carry a password) or keys.
    let backend = store::Backend::of_url(&config.database)?;
    tracing::info!(
        database = ?backend,
        server_name = %settings.server_name,
        request_ttl_secs = settings.request_ttl_secs,
        apns = config.push.apns.is_some(),
        fcm = config.push.fcm.is_some(),
        webpush = config.push.webpush.is_some(),
        geoip = config.geoip.is_some(),
        trusted_proxies = config.trusted_proxies.len(),
        outbound_allow_http_loopback = config.outbound.allow_http_loopback,
        outbound_allow_networks = config.outbound.allow_networks.len(),
        max_push_channels_per_user = config.outbound.max_push_channels_per_user,
        "starting"
    );
    if config.outbound.allow_http_loopback {
        tracing::warn!(
            "[outbound] allow_http_loopback is on: Web Push and CIBA ping endpoints may be plain \
             http on loopback addresses (a development setting, never for production)"
        );
    }
    let transports = config.push.open_transports(&pool, &config.outbound).await?;
    let mut state = AppState::new(pool, settings)
        .await?
        .with_push(transports, config.push.retry)
        .with_risk(config.risk)
        .with_trusted_proxies(config.trusted_proxies.clone())
        .with_parking_limits(config.limits.parking)
        .with_password_limits(signin_domain::accounts::passwords::PasswordLimits {
            concurrency: config.limits.argon2_concurrency,
            queue: config.limits.argon2_queue,
            ..Default::default()
        })
        .with_outbound(config.outbound.clone());
    if let Some(path) = &config.geoip {
        state = state.with_locator(std::sync::Arc::new(rules::geoip::MaxMindLocator::open(
            path,
        )?));
    }
    if backend == store::Backend::Postgres {
        signin_domain::cluster::start(&config.database, &state).await?;
    }
    Ok(state)
}

/// Serves until SIGINT/SIGTERM. Prints `signin-server listening on http://<addr>` once bound.
pub async fn run(config: ServeConfig) -> anyhow::Result<()> {
    let state = prepare(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("could not listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "signin-server listening on http://{addr}")?;
        out.flush()?;
    }
    tracing::info!(%addr, "listening");
    let mut limits = config.limits.connections;
    listener::fit_to_descriptor_limit(&mut limits);
    let shutdown_state = state.clone();
    listener::serve(
        listener,
        app(state),
        limits,
        config.trusted_proxies.clone(),
        async move {
            shutdown_signal().await;
            tracing::info!("shutting down");
            shutdown_state.begin_shutdown();
        },
    )
    .await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
