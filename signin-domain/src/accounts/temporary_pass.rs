//! Temporary access passes: how a user whose policy requires the phone (modes `push` and
//! `passwordless`, where a password alone is refused) signs in once to register a first (or a
//! replacement) phone. An admin issues one (`admin user temporary-pass --upn U`); it is
//! random (128 bits), printed once, stored as SHA-256 only, works once, and expires after
//! `ttl_secs` (default 1 hour, at most 8). Issue and use are audited.
use anyhow::bail;
use authenticator_protocol::encoding::b64;

use super::code_hash;
use crate::audit::{self, Event};
use crate::random::random_bytes;
use crate::store::{now_ms, passes, users, Pool};

pub const DEFAULT_TTL_SECS: u64 = 3600;
pub const MAX_TTL_SECS: u64 = 8 * 3600;

/// Issues a pass for `upn` and returns it (to be handed to the user; it is not stored).
pub async fn issue(pool: &Pool, upn: &str, ttl_secs: u64) -> anyhow::Result<String> {
    let upn = crate::upn::cli_arg("--upn", upn)?;
    let upn = upn.as_str();
    if ttl_secs == 0 || ttl_secs > MAX_TTL_SECS {
        bail!("--ttl-secs must be 1 to {MAX_TTL_SECS}");
    }
    if !users::exists(pool, upn).await? {
        bail!("no user {upn}");
    }
    let pass = b64(&random_bytes::<16>()?);
    let now = now_ms();
    let ttl_ms = i64::try_from(ttl_secs * 1000)?;
    passes::insert(pool, &code_hash(&pass), upn, now, now + ttl_ms).await?;
    let outcome = format!("ttl_secs={ttl_secs}");
    audit::record(
        pool,
        Event::TemporaryPassIssued,
        audit::Entry {
            upn: Some(upn),
            outcome: &outcome,
            ..Default::default()
        },
    )
    .await?;
    Ok(pass)
}

/// Whether `pass` is an unused, unexpired pass of `upn`; it is used up if so. Audited either
/// way (never the pass itself).
pub async fn redeem(pool: &Pool, upn: &str, pass: &str) -> anyhow::Result<bool> {
    let ok = passes::consume(pool, &code_hash(pass.trim()), upn, now_ms()).await?;
    audit::record(
        pool,
        Event::TemporaryPassUsed,
        audit::Entry {
            upn: Some(upn),
            outcome: if ok { "ok" } else { "refused" },
            ..Default::default()
        },
    )
    .await?;
    Ok(ok)
}
