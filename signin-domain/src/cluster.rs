//! Several server instances on one PostgreSQL database share work. A wake-up in one instance
//! (a request left `pending`, a new request for an account) is sent to the others with
//! `NOTIFY`; each instance `LISTEN`s on one connection and feeds what arrives into its
//! in-memory waiters (`Waiters`), whose waiters then re-read the database. Payloads carry only
//! an instance tag and opaque ids (`<instance>:r:<request id>`, `<instance>:a:<account id>`);
//! never numbers, codes or tokens.
//!
//! If the listening connection drops, the listener reconnects (with backoff) and then wakes
//! every local waiter once, since notifications sent meanwhile are lost. SQLite has no such
//! channel: one server process per SQLite database.
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rand::Rng;
use tokio::sync::{mpsc, watch};

use crate::delivery::{LongPoll, Relay, Waiters};
use crate::state::AppState;
use crate::store::notify::{self, Listener};
use crate::store::{Pool, StoreResult};

/// The PostgreSQL notification channel.
pub const CHANNEL: &str = "signin_wake";
/// Wake-ups waiting to be sent; beyond this they are dropped (waiters still time out and
/// re-check, and pages re-poll).
const QUEUE: usize = 4096;
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Longest id accepted from the channel (ids are short random strings).
const MAX_KEY_LEN: usize = 128;

#[derive(Clone)]
struct Targets {
    /// `r`: sign-in pages waiting on a request id.
    requests: Arc<Waiters>,
    /// `a`: device long-polls waiting on an account id.
    longpoll: Arc<LongPoll>,
}

impl Targets {
    fn of(state: &AppState) -> Self {
        Targets {
            requests: state.request_waiters.clone(),
            longpoll: state.longpoll.clone(),
        }
    }

    fn dispatch(&self, own: &str, payload: &str) {
        let mut parts = payload.splitn(3, ':');
        let (Some(instance), Some(tag), Some(key)) = (parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        if instance == own || key.is_empty() || key.len() > MAX_KEY_LEN {
            return;
        }
        match tag {
            "r" => self.requests.wake_local(key),
            "a" => self.longpoll.accounts.wake_local(key),
            _ => {}
        }
    }

    fn wake_all(&self) {
        self.requests.wake_all_local();
        self.longpoll.accounts.wake_all_local();
    }
}

/// Starts relaying this instance's wake-ups to the others and theirs to it. Returns once the
/// instance listens, so that nothing sent after it starts serving is missed.
pub async fn start(url: &str, state: &AppState) -> anyhow::Result<()> {
    let instance = format!("{:016x}", rand::rngs::OsRng.gen::<u64>());
    let listener = listen(url)
        .await
        .context("could not LISTEN on the PostgreSQL database")?;
    let targets = Targets::of(state);
    let (tx, rx) = mpsc::channel::<String>(QUEUE);
    for (tag, waiters) in [("r", &*targets.requests), ("a", &targets.longpoll.accounts)] {
        let (tx, instance) = (tx.clone(), instance.clone());
        let relay = Relay(Box::new(move |key: &str| {
            if tx.try_send(format!("{instance}:{tag}:{key}")).is_err() {
                tracing::warn!("cross-instance wake-up queue full or closed; one dropped");
            }
        }));
        if !waiters.set_relay(relay) {
            anyhow::bail!("cluster relay already started for this state");
        }
    }
    tokio::spawn(send_loop(state.pool.clone(), rx, state.shutdown.clone()));
    tokio::spawn(listen_loop(
        url.to_owned(),
        listener,
        instance,
        targets,
        state.shutdown.clone(),
    ));
    tracing::info!("sharing wake-ups with other instances (PostgreSQL LISTEN/NOTIFY)");
    Ok(())
}

async fn listen(url: &str) -> StoreResult<Listener> {
    Listener::connect(url, CHANNEL).await
}

async fn send_loop(
    pool: Pool,
    mut rx: mpsc::Receiver<String>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let payload = tokio::select! {
            p = rx.recv() => match p {
                Some(p) => p,
                None => return,
            },
            _ = shutdown.changed() => return,
        };
        if let Err(e) = notify::notify(&pool, CHANNEL, &payload).await {
            tracing::warn!(error = %e, "could not notify other instances");
        }
    }
}

async fn listen_loop(
    url: String,
    mut listener: Listener,
    instance: String,
    targets: Targets,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        // Receive until the connection is lost.
        loop {
            if *shutdown.borrow() {
                return;
            }
            let received = tokio::select! {
                r = listener.recv() => r,
                _ = shutdown.changed() => return,
            };
            match received {
                Ok(Some(payload)) => targets.dispatch(&instance, &payload),
                Ok(None) => {
                    tracing::warn!("lost the PostgreSQL LISTEN connection; reconnecting");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "PostgreSQL LISTEN failed; reconnecting");
                    break;
                }
            }
        }
        // Reconnect with backoff, then wake every local waiter: notifications sent while the
        // connection was down are lost, and the waiters re-read the database.
        let mut backoff = Duration::from_millis(100);
        loop {
            if *shutdown.borrow() {
                return;
            }
            match listen(&url).await {
                Ok(l) => {
                    listener = l;
                    tracing::info!("PostgreSQL LISTEN connection restored");
                    targets.wake_all();
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "PostgreSQL LISTEN reconnect failed");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}
