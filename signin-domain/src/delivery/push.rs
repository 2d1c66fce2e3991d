//! Push delivery to phones: APNs, FCM and Web Push clients behind one [`Transport`] trait, and the
//! [`Dispatcher`] that implements [`Delivery`]: it wakes long-polls at once (always) and sends
//! the matching push in a background task, with bounded retries, never blocking the sign-in.
//!
//! A push carries only `{v, aid, rid}` (PROTOCOL.md §6.1). A device token the push service
//! calls invalid marks the device's push channel *stale*: stored, audited, never pushed to
//! again (long-poll still works) until the device registers a new channel.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use authenticator_protocol::push::{PushChannelKind, PushEnvelope};
use authenticator_protocol::UnixMillis;
use serde::Deserialize;
use tokio::sync::Notify;

use crate::audit::{self, Event};
use crate::delivery::{Delivery, LongPoll};
use crate::store::{devices, from_db_ms, now_ms, requests, Pool};

pub use super::apns::{ApnsClient, ApnsConfig};
pub use super::fcm::{FcmClient, FcmConfig};
pub use super::webpush::{WebPushClient, WebPushConfig};

/// Push kinds a device may register (`PushChannel.kind`).
pub const KIND_APNS: &str = PushChannelKind::Apns.as_str();
pub const KIND_FCM: &str = PushChannelKind::Fcm.as_str();
pub const KIND_LONGPOLL: &str = PushChannelKind::LongPoll.as_str();
pub const KIND_WEBPUSH: &str = PushChannelKind::WebPush.as_str();

/// What one push needs: the envelope, the device token and when the request expires.
#[derive(Clone)]
pub struct PushTarget {
    pub envelope: PushEnvelope,
    pub token: String,
    pub expires_at: UnixMillis,
}

impl std::fmt::Debug for PushTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The device token is a credential of sorts: never printed.
        f.debug_struct("PushTarget")
            .field("envelope", &self.envelope)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// How a push failed. Reasons are the push service's fixed error names (sanitized), never
/// tokens or payloads, so they are safe to log and audit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The service says this device token is no longer valid: mark the channel stale.
    #[error("invalid device token ({0})")]
    InvalidToken(String),
    /// Worth another try later (throttled, service unavailable, network, expired auth token).
    #[error("temporary failure ({reason})")]
    Retryable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Refused for a reason a retry will not fix (bad topic, payload, configuration).
    #[error("rejected ({0})")]
    Rejected(String),
}

impl PushError {
    pub fn retryable(reason: impl Into<String>) -> Self {
        PushError::Retryable {
            reason: reason.into(),
            retry_after: None,
        }
    }
}

/// Keeps only `[A-Za-z0-9_.-]`, at most 64 characters: service error names are safe to
/// record, anything else is not.
pub fn safe_reason(text: &str) -> String {
    let s: String = text
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        .take(64)
        .collect();
    if s.is_empty() {
        "unspecified".to_owned()
    } else {
        s
    }
}

/// Describes a `reqwest` error without its URL (an APNs URL holds the device token).
pub fn http_error_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect".into()
    } else if e.is_decode() || e.is_body() {
        "bad_response".into()
    } else {
        "network".into()
    }
}

/// Parses a `Retry-After` header given in seconds.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// One push service client.
#[async_trait::async_trait]
pub trait Transport: Send + Sync + 'static {
    /// The `PushChannel.kind` this transport serves (`apns`, `fcm`).
    fn kind(&self) -> &'static str;
    async fn send(&self, target: &PushTarget) -> Result<(), PushError>;
}

/// Bounded retries with exponential backoff (a `Retry-After` is honoured up to `max_delay`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay_ms: 500,
            max_delay_ms: 8_000,
        }
    }
}

impl RetryPolicy {
    /// Delay before attempt `attempt + 1` (attempt counts from 1).
    pub fn delay(&self, attempt: u32, hint: Option<Duration>) -> Duration {
        let exp = self
            .base_delay_ms
            .saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
        let ms = hint
            .map(|h| u64::try_from(h.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(exp)
            .min(self.max_delay_ms);
        Duration::from_millis(ms)
    }
}

/// Push settings of `serve` (config file section `[push]`, environment, flags).
#[derive(Debug, Clone, Default)]
pub struct PushConfig {
    pub apns: Option<ApnsConfig>,
    pub fcm: Option<FcmConfig>,
    pub webpush: Option<WebPushConfig>,
    pub retry: RetryPolicy,
}

impl PushConfig {
    /// Builds the configured APNs and FCM clients (reading key files now, so a bad path fails
    /// at start). Web Push needs the database for its key: [`PushConfig::open_transports`]
    /// builds every client.
    pub fn transports(&self) -> anyhow::Result<Vec<Arc<dyn Transport>>> {
        let mut out: Vec<Arc<dyn Transport>> = Vec::new();
        if let Some(c) = &self.apns {
            out.push(Arc::new(ApnsClient::new(c)?));
        }
        if let Some(c) = &self.fcm {
            out.push(Arc::new(FcmClient::new(c)?));
        }
        Ok(out)
    }

    /// Every configured client, Web Push included (its VAPID key lives in the database and is
    /// created there on first use; it sends under the outbound policy).
    pub async fn open_transports(
        &self,
        pool: &Pool,
        outbound: &crate::outbound::OutboundPolicy,
    ) -> anyhow::Result<Vec<Arc<dyn Transport>>> {
        let mut out = self.transports()?;
        if let Some(c) = &self.webpush {
            out.push(Arc::new(WebPushClient::open(pool, c, outbound).await?));
        }
        Ok(out)
    }
}

/// Wakes long-polls and sends APNs/FCM pushes in the background.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    longpoll: Arc<LongPoll>,
    transports: HashMap<&'static str, Arc<dyn Transport>>,
    retry: RetryPolicy,
    in_flight: AtomicUsize,
    idle: Notify,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field(
                "transports",
                &self.inner.transports.keys().collect::<Vec<_>>(),
            )
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    pub fn new(
        pool: Pool,
        longpoll: Arc<LongPoll>,
        transports: Vec<Arc<dyn Transport>>,
        retry: RetryPolicy,
    ) -> Self {
        Dispatcher {
            inner: Arc::new(Inner {
                pool,
                longpoll,
                transports: transports.into_iter().map(|t| (t.kind(), t)).collect(),
                retry,
                in_flight: AtomicUsize::new(0),
                idle: Notify::new(),
            }),
        }
    }

    /// Waits until no push is being sent or retried (tests; graceful shutdown).
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.inner.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.inner.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Sends the push for `envelope` now (awaits the whole attempt sequence).
    pub async fn push_now(&self, envelope: PushEnvelope) {
        self.push_to(envelope, None).await;
    }

    /// [`Delivery::deliver`] to a push channel the caller read in this request (the sign-in
    /// start reads it with the user's devices), so the push task does not read it again. The
    /// caller stored the long-poll's `queued` entry ([`queued_entry`]) with the request, in
    /// the same transaction, so the push task does not write it either.
    pub fn deliver_to(&self, envelope: &PushEnvelope, channel: devices::PushChannel) {
        self.spawn_push(envelope, Some(channel));
    }

    fn spawn_push(&self, envelope: &PushEnvelope, channel: Option<devices::PushChannel>) {
        self.inner.longpoll.deliver(envelope);
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::error!("push delivery needs a tokio runtime");
            return;
        };
        self.inner.in_flight.fetch_add(1, Ordering::SeqCst);
        let guard = InFlight(self.inner.clone());
        let me = self.clone();
        let envelope = envelope.clone();
        rt.spawn(async move {
            me.push_to(envelope, channel).await;
            drop(guard);
        });
    }

    async fn push_to(&self, envelope: PushEnvelope, channel: Option<devices::PushChannel>) {
        if let Err(e) = self.inner.push(&envelope, channel).await {
            tracing::error!(error = format!("{e:#}"), request_id = %envelope.request_id, "push delivery failed");
        }
    }
}

struct InFlight(Arc<Inner>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Delivery for Dispatcher {
    fn deliver(&self, envelope: &PushEnvelope) {
        self.spawn_push(envelope, None);
    }
}

/// The `push_delivery` entry of a request queued for long-poll (every request is), for a
/// caller that stores it with the request ([`Dispatcher::deliver_to`]).
pub fn queued_entry(upn: &str, envelope: &PushEnvelope) -> crate::store::audit::OwnedAuditRow {
    audit::owned(
        Event::PushDelivery,
        audit::Entry {
            upn: Some(upn),
            account_id: Some(envelope.account_id.as_str()),
            request_id: Some(envelope.request_id.as_str()),
            outcome: &outcome(KIND_LONGPOLL, "queued"),
            actor: None,
        },
    )
}

/// The audit outcome text of one transport's result: `<kind>:<outcome>`.
fn outcome(kind: &str, what: &str) -> String {
    format!("{kind}:{what}")
}

impl Inner {
    async fn record(
        &self,
        event: Event,
        upn: &str,
        envelope: &PushEnvelope,
        outcome: &str,
    ) -> anyhow::Result<()> {
        audit::record(
            &self.pool,
            event,
            audit::Entry {
                upn: Some(upn),
                account_id: Some(envelope.account_id.as_str()),
                request_id: Some(envelope.request_id.as_str()),
                outcome,
                actor: None,
            },
        )
        .await?;
        Ok(())
    }

    /// Whether the request is still waiting for an answer (no point pushing otherwise).
    async fn still_pending(&self, envelope: &PushEnvelope) -> anyhow::Result<Option<UnixMillis>> {
        Ok(
            requests::pending_until(&self.pool, &envelope.request_id, now_ms())
                .await?
                .map(from_db_ms),
        )
    }

    /// `known`: the account's channel as the caller read it; `None`: read it here.
    async fn push(
        &self,
        envelope: &PushEnvelope,
        known: Option<devices::PushChannel>,
    ) -> anyhow::Result<()> {
        let queued_recorded = known.is_some();
        let channel = match known {
            Some(channel) => Some(channel),
            None => devices::push_channel(&self.pool, &envelope.account_id).await?,
        };
        let Some(devices::PushChannel {
            upn,
            kind,
            token,
            stale_at,
        }) = channel
        else {
            return Ok(());
        };
        // Long-poll was woken synchronously in `deliver`; the device fetches when it polls.
        if !queued_recorded {
            self.record(
                Event::PushDelivery,
                &upn,
                envelope,
                &outcome(KIND_LONGPOLL, "queued"),
            )
            .await?;
        }
        if kind == KIND_LONGPOLL || kind.is_empty() {
            return Ok(());
        }
        let Some(transport) = self.transports.get(kind.as_str()).cloned() else {
            let what = if kind == KIND_APNS || kind == KIND_FCM || kind == KIND_WEBPUSH {
                "not_configured"
            } else {
                "unknown_kind"
            };
            let kind_text = safe_reason(&kind);
            self.record(
                Event::PushDelivery,
                &upn,
                envelope,
                &outcome(&kind_text, what),
            )
            .await?;
            tracing::warn!(kind = %kind_text, request_id = %envelope.request_id, "no client for this push kind");
            return Ok(());
        };
        let kind = transport.kind();
        if stale_at.is_some() {
            self.record(
                Event::PushDelivery,
                &upn,
                envelope,
                &outcome(kind, "skipped_stale"),
            )
            .await?;
            return Ok(());
        }
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let Some(expires_at) = self.still_pending(envelope).await? else {
                self.record(
                    Event::PushDelivery,
                    &upn,
                    envelope,
                    &outcome(kind, "abandoned"),
                )
                .await?;
                return Ok(());
            };
            let target = PushTarget {
                envelope: envelope.clone(),
                token: token.clone(),
                expires_at,
            };
            match transport.send(&target).await {
                Ok(()) => {
                    tracing::debug!(kind, request_id = %envelope.request_id, attempt, "push sent");
                    // Delivery health: the device's "last push delivered".
                    crate::store::push_channels::push_delivered(
                        &self.pool,
                        envelope.account_id.as_str(),
                        now_ms(),
                    )
                    .await?;
                    self.record(Event::PushDelivery, &upn, envelope, &outcome(kind, "sent"))
                        .await?;
                    return Ok(());
                }
                Err(PushError::InvalidToken(reason)) => {
                    self.mark_stale(&upn, envelope, kind, &token, &reason)
                        .await?;
                    return Ok(());
                }
                Err(PushError::Rejected(reason)) => {
                    tracing::warn!(kind, request_id = %envelope.request_id, %reason, "push rejected");
                    self.record(
                        Event::PushDelivery,
                        &upn,
                        envelope,
                        &outcome(kind, &format!("rejected:{reason}")),
                    )
                    .await?;
                    return Ok(());
                }
                Err(PushError::Retryable {
                    reason,
                    retry_after,
                }) => {
                    if attempt >= self.retry.max_attempts {
                        tracing::warn!(kind, request_id = %envelope.request_id, %reason, attempt, "push failed");
                        self.record(
                            Event::PushDelivery,
                            &upn,
                            envelope,
                            &outcome(kind, &format!("failed:{reason}")),
                        )
                        .await?;
                        return Ok(());
                    }
                    tracing::info!(kind, request_id = %envelope.request_id, %reason, attempt, "push will be retried");
                    tokio::time::sleep(self.retry.delay(attempt, retry_after)).await;
                }
            }
        }
    }

    async fn mark_stale(
        &self,
        upn: &str,
        envelope: &PushEnvelope,
        kind: &str,
        token: &str,
        reason: &str,
    ) -> anyhow::Result<()> {
        // Only the token that failed: a channel re-registered meanwhile stays fresh.
        devices::mark_push_stale(
            &self.pool,
            &envelope.account_id,
            token,
            &format!("{kind}:{reason}"),
            now_ms(),
        )
        .await?;
        tracing::warn!(kind, account_id = %envelope.account_id, %reason, "push token invalid: channel marked stale");
        self.record(Event::PushTokenStale, upn, envelope, &outcome(kind, reason))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_and_honours_retry_after() {
        let p = RetryPolicy {
            max_attempts: 5,
            base_delay_ms: 100,
            max_delay_ms: 1_000,
        };
        assert_eq!(p.delay(1, None), Duration::from_millis(100));
        assert_eq!(p.delay(2, None), Duration::from_millis(200));
        assert_eq!(p.delay(4, None), Duration::from_millis(800));
        assert_eq!(p.delay(5, None), Duration::from_millis(1_000));
        assert_eq!(p.delay(60, None), Duration::from_millis(1_000));
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3600))),
            Duration::from_millis(1_000)
        );
        assert_eq!(
            p.delay(3, Some(Duration::from_millis(50))),
            Duration::from_millis(50)
        );
    }

    #[test]
    fn reasons_are_sanitized() {
        assert_eq!(safe_reason("BadDeviceToken"), "BadDeviceToken");
        assert_eq!(safe_reason("a b/c?d=e"), "abcde");
        assert_eq!(safe_reason(""), "unspecified");
        assert_eq!(safe_reason(&"x".repeat(100)).len(), 64);
    }
}
