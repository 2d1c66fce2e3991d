//! Running the server inside another program (the desktop demo, end-to-end tests): the same
//! database, state and router as `signin-server serve`, on a listener the caller chooses.
use std::net::SocketAddr;

use anyhow::Context;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::ServeConfig;
use signin_domain::state::AppState;
use signin_domain::store::Pool;

/// A server running on a tokio task. Dropping it without `shutdown` aborts the task.
pub struct RunningServer {
    /// The bound address (use `127.0.0.1:0` in `ServeConfig::listen` for a free port).
    pub addr: SocketAddr,
    state: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Opens the database (migrating it), binds `config.listen` and serves on a background task.
pub async fn spawn(config: ServeConfig) -> anyhow::Result<RunningServer> {
    let state = crate::prepare(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("could not listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let router = crate::app(state.clone());
    let shutdown_state = state.clone();
    let limits = config.limits.connections;
    let exempt = config.trusted_proxies.clone();
    let task = tokio::spawn(async move {
        let graceful = async move {
            let _ = stopped.await;
            shutdown_state.begin_shutdown();
        };
        crate::listener::serve(listener, router, limits, exempt, graceful).await;
    });
    Ok(RunningServer {
        addr,
        state,
        stop: Some(stop),
        task: Some(task),
    })
}

impl RunningServer {
    /// The handlers' state (waiters, settings), for tests and embedders.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The server's database, for administration (`signin_domain::accounts`).
    pub fn pool(&self) -> &Pool {
        &self.state.pool
    }

    /// Ends long-polls, stops accepting connections and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            self.state.begin_shutdown();
            task.abort();
        }
    }
}
