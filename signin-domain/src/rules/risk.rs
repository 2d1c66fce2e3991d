//! Anti-fatigue (push bombing) and per-user risk.
//!
//! - **Escalating limit** on sign-in starts (each start sends one push): a token bucket of
//!   `burst` starts refilled one per `refill_secs`; when it runs dry the user is blocked for a
//!   cool-down that doubles with every further time it runs dry (`cooldown_secs`, 2×, 4×, …,
//!   at most `max_cooldown_secs`), and only a quiet `max_cooldown_secs` without a block resets
//!   the escalation. Refusals answer `429 rate_limited` with `Retry-After`.
//! - **"This wasn't me"** (a `report` decision) pauses sign-ins, so pushes, for the user for
//!   `report_pause_secs` (`403 paused` with `Retry-After`) and raises the user's risk score.
//!
//! State lives in `user_risk` (so every server instance sees it) and is updated with an
//! optimistic version check. Every refusal and pause is audited.
use std::net::{IpAddr, Ipv6Addr};

use serde::Deserialize;

use crate::audit::{self, Event};
use crate::error::AppError;
use crate::store::risk::{LimitWrite, RiskKey};
use crate::store::{self, now_ms, Pool};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RiskConfig {
    /// Sign-ins a user may start in a burst.
    pub burst: u32,
    /// One more sign-in is allowed every this many seconds.
    pub refill_secs: u64,
    /// Block after the bucket first runs dry; doubles each further time.
    pub cooldown_secs: u64,
    pub max_cooldown_secs: u64,
    /// How long "this wasn't me" pauses the user's sign-ins.
    pub report_pause_secs: u64,
    /// The ceiling over all of a user's starts, whatever the client, address or entry point
    /// (pages, JSON API, OpenID Connect, CIBA): this many in a burst (at least `burst`),
    /// refilled like `burst`.
    pub user_burst: u32,
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            burst: 3,
            refill_secs: 60,
            cooldown_secs: 60,
            max_cooldown_secs: 3600,
            report_pause_secs: 3600,
            user_burst: 10,
        }
    }
}

impl RiskConfig {
    /// The per-user ceiling's bucket: `user_burst` starts (never fewer than one client's
    /// `burst`), then refilled and cooled down as `burst` is.
    fn ceiling(&self) -> RiskConfig {
        RiskConfig {
            burst: self.user_burst.max(self.burst),
            ..*self
        }
    }
}

/// The rate-limit subject of a user's ceiling: every start of the user counts against it. (A
/// client id or address never contains a newline followed by `*`.)
/// The `start_limits` subject of the user's ceiling (all clients together).
pub fn ceiling_subject(upn: &str) -> String {
    format!("{upn}\n*")
}

/// The stored per-user state.
pub use crate::store::risk::UserRisk;

impl UserRisk {
    fn fresh(cfg: &RiskConfig, now: i64) -> Self {
        UserRisk {
            bucket_millitokens: i64::from(cfg.burst) * 1000,
            bucket_at: now,
            ..Default::default()
        }
    }

    /// `low` (no reports), `elevated` (one), `high` (two or more).
    pub fn level(&self) -> &'static str {
        match self.risk {
            i64::MIN..=0 => "low",
            1 => "elevated",
            _ => "high",
        }
    }
}

/// How much a user's sign-ins are at risk now; it sets the least number length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Elevation {
    Normal,
    /// One recent "this wasn't me" report, or starts refused by the rate limit (a burst).
    Elevated,
    /// Two or more recent reports.
    High,
}

/// Reports older than this no longer raise the number length.
pub const RECENT_REPORT_SECS: u64 = 30 * 24 * 3600;

impl Elevation {
    /// From the user's reports (recent ones only) and whether the start's rate-limit subject
    /// has a strike (starts refused within the forgiveness window).
    pub fn of(user: Option<&UserRisk>, strikes: i64, now: i64) -> Elevation {
        let recent = user.is_some_and(|u| {
            u.last_report_at
                .is_some_and(|at| now.saturating_sub(at) < secs_ms(RECENT_REPORT_SECS))
        });
        match user.map_or(0, |u| u.risk) {
            r if recent && r >= 2 => Elevation::High,
            r if recent && r == 1 => Elevation::Elevated,
            _ if strikes > 0 => Elevation::Elevated,
            _ => Elevation::Normal,
        }
    }

    /// The number's digits for a sign-in: the policy's, at least 4 when elevated, 6 when high.
    pub fn number_digits(self, policy: u8) -> u8 {
        match self {
            Elevation::Normal => policy,
            Elevation::Elevated => policy.max(4),
            Elevation::High => 6,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Refused by the rate limit; `new_strike` when this attempt started a new cool-down.
    Limited {
        retry_after_ms: i64,
        new_strike: bool,
    },
    Paused {
        retry_after_ms: i64,
    },
}

/// A client address as rate limits count it (sign-in starts from the server's own pages,
/// password attempts): IPv4 as is, IPv6 by its /64 (one subscriber's prefix, 2^64 addresses
/// that would otherwise each bring a fresh allowance).
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// A short pseudonym of a client address (its /64 for IPv6), for entries that must tell
/// addresses apart without storing them: a keyed hash under a key that lives as long as this
/// process, so it links entries of one run and reveals nothing later.
pub fn address_tag(ip: std::net::IpAddr) -> String {
    use base64::Engine;
    static KEY: std::sync::OnceLock<ring::hmac::Key> = std::sync::OnceLock::new();
    let key = KEY.get_or_init(|| {
        let secret = crate::random::random_bytes::<32>().unwrap_or([0; 32]);
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret)
    });
    let address = address_key(ip).to_string();
    let tag = ring::hmac::sign(key, address.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&tag.as_ref()[..6])
}

fn secs_ms(s: u64) -> i64 {
    i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// The decision for one sign-in start at `now` and the state to store. Pure: no clock, no I/O.
pub fn admit(cfg: &RiskConfig, current: Option<UserRisk>, now: i64) -> (UserRisk, Verdict) {
    let mut s = current.unwrap_or_else(|| UserRisk::fresh(cfg, now));
    if s.paused_until > now {
        return (
            s,
            Verdict::Paused {
                retry_after_ms: s.paused_until - now,
            },
        );
    }
    if s.blocked_until > now {
        return (
            s,
            Verdict::Limited {
                retry_after_ms: s.blocked_until - now,
                new_strike: false,
            },
        );
    }
    // Refill: one token (1000 millitokens) per `refill_secs`.
    let full = i64::from(cfg.burst) * 1000;
    let elapsed = now.saturating_sub(s.bucket_at).max(0);
    let per_ms = i64::try_from(cfg.refill_secs.max(1)).unwrap_or(i64::MAX);
    s.bucket_millitokens = s
        .bucket_millitokens
        .saturating_add(elapsed / per_ms)
        .min(full);
    s.bucket_at = now;
    // A quiet period as long as the longest cool-down forgives earlier blocks.
    if s.strikes > 0 && now.saturating_sub(s.blocked_until) >= secs_ms(cfg.max_cooldown_secs) {
        s.strikes = 0;
    }
    if s.bucket_millitokens >= 1000 {
        s.bucket_millitokens -= 1000;
        return (s, Verdict::Allowed);
    }
    s.strikes += 1;
    let shift = u32::try_from(s.strikes - 1).unwrap_or(u32::MAX).min(30);
    let cooldown = secs_ms(cfg.cooldown_secs)
        .saturating_mul(1i64 << shift)
        .min(secs_ms(cfg.max_cooldown_secs));
    s.blocked_until = now.saturating_add(cooldown);
    (
        s,
        Verdict::Limited {
            retry_after_ms: cooldown,
            new_strike: true,
        },
    )
}

/// The state after a report at `now`: paused, riskier.
pub fn reported(cfg: &RiskConfig, current: Option<UserRisk>, now: i64) -> UserRisk {
    let mut s = current.unwrap_or_else(|| UserRisk::fresh(cfg, now));
    s.paused_until = s
        .paused_until
        .max(now.saturating_add(secs_ms(cfg.report_pause_secs)));
    s.risk = s.risk.saturating_add(1);
    s.reports = s.reports.saturating_add(1);
    s.last_report_at = Some(now);
    s
}

/// A device as `describe_user` shows it: account, name, push kind, stale since, stale
/// reason, phone sign-in enabled at.
/// Applies `f` to the user's state atomically (optimistic retries).
async fn update<T>(
    pool: &Pool,
    key: RiskKey<'_>,
    f: impl FnMut(Option<UserRisk>, i64) -> (UserRisk, T),
) -> Result<T, AppError> {
    update_from(pool, key, None, f).await
}

/// [`update`] whose first try starts from `read` (the row and its version as the caller read
/// it this request, `None` inside: no row) instead of reading it: a row changed since fails
/// the versioned write, and the next try reads it.
async fn update_from<T>(
    pool: &Pool,
    key: RiskKey<'_>,
    mut read: Option<Option<(UserRisk, i64)>>,
    mut f: impl FnMut(Option<UserRisk>, i64) -> (UserRisk, T),
) -> Result<T, AppError> {
    for _ in 0..16 {
        let current = match read.take() {
            Some(row) => row,
            None => store::risk::load(pool, key).await?,
        };
        let (next, out) = f(current.map(|c| c.0), now_ms());
        if current.map(|c| c.0) == Some(next) {
            return Ok(out);
        }
        if store::risk::save_if_version(pool, key, &next, current.map(|c| c.1)).await? {
            return Ok(out);
        }
    }
    Err(AppError::internal(anyhow::anyhow!(
        "user_risk update kept conflicting"
    )))
}

fn retry_secs(ms: i64) -> u64 {
    u64::try_from(ms.max(0)).unwrap_or(0).div_ceil(1000).max(1)
}

/// The anti-fatigue rows a sign-in start read (each with its version), for [`admit_signin`].
#[derive(Debug, Clone, Copy, Default)]
pub struct StartRisk {
    pub user: Option<(UserRisk, i64)>,
    pub subject: Option<(UserRisk, i64)>,
    pub ceiling: Option<(UserRisk, i64)>,
}

/// The admission of one sign-in start from the rows it read, at `now`, when it is admitted:
/// the user is not paused, and both the start's `subject` and the user's ceiling
/// ([`ceiling_subject`]) have a start left. Then the user's [`Elevation`] and the rows to store
/// with the start's requests (in its write unit, only if neither changed since `read`). `None`
/// when it is refused: [`admit_signin`] decides again and records the refusal. Pure.
pub fn admitted_from(
    cfg: &RiskConfig,
    upn: &str,
    subject: &str,
    read: &StartRisk,
    now: i64,
) -> Option<(Elevation, Vec<LimitWrite>)> {
    let user = read.user.map(|(r, _)| r);
    if user.is_some_and(|u| u.paused_until > now) {
        return None;
    }
    let mut strikes = 0;
    let mut writes = Vec::new();
    for (subject, row, cfg) in [
        (subject.to_owned(), read.subject, *cfg),
        (ceiling_subject(upn), read.ceiling, cfg.ceiling()),
    ] {
        let current = row.map(|(r, _)| r);
        let (next, verdict) = admit(&cfg, current, now);
        if verdict != Verdict::Allowed {
            return None;
        }
        strikes = strikes.max(next.strikes);
        if current != Some(next) {
            writes.push(LimitWrite {
                subject,
                next,
                version: row.map(|(_, v)| v),
            });
        }
    }
    Some((Elevation::of(user.as_ref(), strikes, now), writes))
}

/// Checks the user's pause and the rate limit of `subject` (the user and the requesting
/// client, see `sign_in::start`) for one sign-in start (which sends one push). Refusals are
/// audited (`signin_paused`, `rate_limited`) and answered `paused` / `rate_limited`. An
/// admitted start gets the user's [`Elevation`] (it sets the number's least length).
///
/// A start takes this path when [`admitted_from`] refused it as read: the refusal's writes
/// and audit entry are stored here (each write versioned and retried), and a start that the
/// rows changed since then admit after all has its writes stored here too.
///
/// `read` are the rows the start read in its first statement (`store::trust::start_view`):
/// the user's, the subject's and the ceiling's ([`ceiling_subject`]).
pub async fn admit_signin(
    pool: &Pool,
    cfg: &RiskConfig,
    upn: &str,
    subject: &str,
    read: StartRisk,
) -> Result<Elevation, AppError> {
    let now = now_ms();
    let user = read.user.map(|(r, _)| r);
    let paused_until = user.map_or(0, |r| r.paused_until);
    let (verdict, strikes, by) = if paused_until > now {
        (
            Verdict::Paused {
                retry_after_ms: paused_until - now,
            },
            0,
            "user",
        )
    } else {
        let (verdict, subject_strikes) = update_from(
            pool,
            RiskKey::Limit(subject),
            Some(read.subject),
            |current, now| {
                let (next, verdict) = admit(cfg, current, now);
                (next, (verdict, next.strikes))
            },
        )
        .await?;
        let ceiling = ceiling_subject(upn);
        match verdict {
            // Within the subject's allowance: the user's ceiling decides.
            Verdict::Allowed => {
                let ceiling_cfg = cfg.ceiling();
                let (verdict, user_strikes) = update_from(
                    pool,
                    RiskKey::Limit(&ceiling),
                    Some(read.ceiling),
                    |current, now| {
                        let (next, verdict) = admit(&ceiling_cfg, current, now);
                        (next, (verdict, next.strikes))
                    },
                )
                .await?;
                (verdict, subject_strikes.max(user_strikes), "user")
            }
            // A burst from one client or address raises the user's number length for every
            // client (a strike on the ceiling that the quiet period forgives).
            Verdict::Limited { new_strike, .. } => {
                if new_strike {
                    update_from(
                        pool,
                        RiskKey::Limit(&ceiling),
                        Some(read.ceiling),
                        |current, now| {
                            let mut next =
                                current.unwrap_or_else(|| UserRisk::fresh(&cfg.ceiling(), now));
                            next.strikes = next.strikes.max(1);
                            next.blocked_until = next.blocked_until.max(now);
                            (next, ())
                        },
                    )
                    .await?;
                }
                (verdict, subject_strikes, "client")
            }
            Verdict::Paused { .. } => (verdict, subject_strikes, "user"),
        }
    };
    let entry = |outcome| audit::Entry {
        upn: Some(upn),
        outcome,
        ..Default::default()
    };
    match verdict {
        Verdict::Allowed => Ok(Elevation::of(user.as_ref(), strikes, now)),
        Verdict::Paused { retry_after_ms } => {
            audit::record(pool, Event::SignInPaused, entry("refused")).await?;
            tracing::info!("sign-in refused: user paused after a report");
            Err(AppError::Paused {
                retry_after_secs: retry_secs(retry_after_ms),
            })
        }
        Verdict::Limited {
            retry_after_ms,
            new_strike,
        } => {
            // A start refused during a cool-down is `blocked` alone, so that a burst of them
            // collapses into one audit line; the cool-down's start says how long.
            let outcome = if new_strike {
                format!(
                    "cooldown_started retry_after_secs={} by={by}",
                    retry_secs(retry_after_ms)
                )
            } else {
                format!("blocked by={by}")
            };
            audit::record(pool, Event::RateLimited, entry(&outcome)).await?;
            tracing::info!(new_strike, by, "sign-in refused: rate limited");
            Err(AppError::RateLimited {
                retry_after_secs: retry_secs(retry_after_ms),
            })
        }
    }
}

/// "This wasn't me": pauses the user's sign-ins and raises the risk. Audited (`user_paused`).
pub async fn record_report(
    pool: &Pool,
    cfg: &RiskConfig,
    upn: &str,
    account_id: &str,
    request_id: &str,
) -> Result<UserRisk, AppError> {
    let state = update(pool, RiskKey::User(upn), |current, now| {
        let next = reported(cfg, current, now);
        (next, next)
    })
    .await?;
    let outcome = format!(
        "paused_until={} risk={}",
        crate::format::rfc3339(state.paused_until),
        state.level()
    );
    audit::record(
        pool,
        Event::UserPaused,
        audit::Entry {
            upn: Some(upn),
            account_id: Some(account_id),
            request_id: Some(request_id),
            outcome: &outcome,
            actor: None,
        },
    )
    .await?;
    tracing::warn!(request_id, "sign-in reported as fraud: user paused");
    // A report may be about a sign-in an attacker already completed elsewhere: every session
    // and token of the user ends now (they sign in again once the pause ends).
    crate::trust::end_sessions(pool, upn, crate::trust::EndReason::Paused).await?;
    Ok(state)
}

/// Ends a pause early (admin). Audited (`user_resumed`). The risk score stays.
pub async fn resume(pool: &Pool, upn: &str) -> Result<bool, AppError> {
    let was_paused = update(pool, RiskKey::User(upn), |current, now| match current {
        Some(mut s) if s.paused_until > now => {
            s.paused_until = 0;
            (s, true)
        }
        Some(s) => (s, false),
        None => (UserRisk::fresh(&RiskConfig::default(), now), false),
    })
    .await?;
    if was_paused {
        audit::record(
            pool,
            Event::UserResumed,
            audit::Entry {
                upn: Some(upn),
                outcome: "ok",
                ..Default::default()
            },
        )
        .await?;
    }
    Ok(was_paused)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: RiskConfig = RiskConfig {
        burst: 3,
        refill_secs: 60,
        cooldown_secs: 60,
        max_cooldown_secs: 3600,
        report_pause_secs: 3600,
        user_burst: 10,
    };

    fn run(state: &mut Option<UserRisk>, now: i64) -> Verdict {
        let (next, v) = admit(&CFG, *state, now);
        *state = Some(next);
        v
    }

    #[test]
    fn burst_then_escalating_cooldowns() {
        let mut s = None;
        let t0 = 1_000_000_000;
        for i in 0..3 {
            assert_eq!(run(&mut s, t0 + i), Verdict::Allowed, "start {i}");
        }
        assert_eq!(
            run(&mut s, t0 + 3),
            Verdict::Limited {
                retry_after_ms: 60_000,
                new_strike: true
            }
        );
        // Blocked until the cool-down ends, without extending it.
        assert_eq!(
            run(&mut s, t0 + 30_003),
            Verdict::Limited {
                retry_after_ms: 30_000,
                new_strike: false
            }
        );
        // After 60 s one token came back: one start, then a doubled cool-down.
        let t1 = t0 + 60_003;
        assert_eq!(run(&mut s, t1), Verdict::Allowed);
        assert_eq!(
            run(&mut s, t1 + 1),
            Verdict::Limited {
                retry_after_ms: 120_000,
                new_strike: true
            }
        );
        let t2 = t1 + 1 + 120_000;
        assert_eq!(run(&mut s, t2), Verdict::Allowed);
        assert_eq!(run(&mut s, t2 + 1), Verdict::Allowed);
        assert_eq!(
            run(&mut s, t2 + 2),
            Verdict::Limited {
                retry_after_ms: 240_000,
                new_strike: true
            }
        );
        // Capped.
        let mut capped = s.unwrap();
        capped.strikes = 40;
        capped.blocked_until = t2 + 299_999;
        capped.bucket_millitokens = 0;
        capped.bucket_at = t2 + 300_000;
        let (_, v) = admit(&CFG, Some(capped), t2 + 300_000);
        assert_eq!(
            v,
            Verdict::Limited {
                retry_after_ms: 3_600_000,
                new_strike: true
            }
        );
        // A quiet hour forgives: the next cool-down is the first one again.
        let quiet = s.unwrap().blocked_until + 3_600_000;
        let mut s2 = s;
        for _ in 0..3 {
            assert_eq!(run(&mut s2, quiet), Verdict::Allowed);
        }
        assert_eq!(
            run(&mut s2, quiet),
            Verdict::Limited {
                retry_after_ms: 60_000,
                new_strike: true
            }
        );
    }

    #[test]
    fn a_report_pauses_and_raises_risk() {
        let now = 5_000_000;
        let s = reported(&CFG, None, now);
        assert_eq!(s.paused_until, now + 3_600_000);
        assert_eq!((s.risk, s.reports, s.level()), (1, 1, "elevated"));
        let (_, v) = admit(&CFG, Some(s), now + 1000);
        assert_eq!(
            v,
            Verdict::Paused {
                retry_after_ms: 3_599_000
            }
        );
        let (_, v) = admit(&CFG, Some(s), now + 3_600_000);
        assert_eq!(v, Verdict::Allowed);
        let s2 = reported(&CFG, Some(s), now + 10);
        assert_eq!((s2.risk, s2.level()), (2, "high"));
        assert_eq!(s2.paused_until, now + 10 + 3_600_000);
    }
}
