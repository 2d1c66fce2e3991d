//! Harness helpers for the push tests; the local APNs and FCM endpoints themselves are
//! `signin_server::push_local` (shared with the end-to-end tests).
#![allow(dead_code)]

use signin_domain::delivery::push::{PushConfig, RetryPolicy};
use signin_domain::rules::risk::RiskConfig;
pub use signin_server::push_local::*;

use crate::support::{harness_with_state, Harness, Phone};

// ------------------------------------------------------------------------------------------
// Harness helpers

pub const APNS_TOKEN: &str = "5a1f0c9e7b3d2a4f6e8c0b1d3f5a7c9e1b3d5f7a9c0e2b4d6f8a0c2e4b6d8f0a";

pub fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay_ms: 5,
        max_delay_ms: 20,
    }
}

/// A harness whose server pushes through the local endpoints.
pub async fn push_harness(
    apns: Option<&Apns>,
    fcm: Option<&Fcm>,
    retry: RetryPolicy,
    risk: RiskConfig,
) -> Harness {
    let config = PushConfig {
        apns: apns.map(Apns::config),
        fcm: fcm.map(Fcm::config),
        webpush: None,
        retry,
    };
    let transports = config.transports().unwrap();
    harness_with_state(90, move |s| s.with_push(transports, retry).with_risk(risk)).await
}

pub fn generous() -> RiskConfig {
    RiskConfig {
        burst: 100,
        ..RiskConfig::default()
    }
}

pub async fn audit_outcomes(h: &Harness, event: &str) -> Vec<String> {
    signin_domain::audit::list(&h.state.pool)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.event == event)
        .map(|r| r.outcome)
        .collect()
}

/// How many times `event` happened: collapsed repeats count (see `store::audit`).
pub async fn audit_count(h: &Harness, event: &str) -> i64 {
    signin_domain::audit::list(&h.state.pool)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.event == event)
        .map(|r| r.repeats + 1)
        .sum()
}

pub async fn stale_reason(h: &Harness, phone: &Phone) -> Option<String> {
    sqlx::query_scalar::<_, Option<String>>(
        "SELECT push_stale_reason FROM devices WHERE account_id = $1",
    )
    .bind(phone.account().as_str())
    .fetch_one(&h.state.pool)
    .await
    .unwrap()
}
