//! Administration used by the CLI (and by tests): users, policy, registration links, audit.
pub mod passwords;

use anyhow::{bail, Context};
use authenticator_protocol::encoding::b64;
use authenticator_protocol::enroll::EnrollmentUrl;
use authenticator_protocol::UnixMillis;
use url::Url;

use crate::api::enroll::code_hash;
use crate::audit::{self, Event};
use crate::sign_in::policy::{self, Policy, PolicyUpdate};
use crate::store::{self, now_ms, to_db_ms, Pool};

/// Creates a user. Fails clearly if the UPN exists.
pub async fn add_user(pool: &Pool, upn: &str, name: &str, groups: &[String]) -> anyhow::Result<()> {
    let upn = upn.trim();
    if upn.is_empty() || upn.len() > 256 {
        bail!("--upn must be 1 to 256 characters");
    }
    if name.trim().is_empty() {
        bail!("--name must not be empty");
    }
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO users (upn, display_name, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (upn) DO NOTHING",
    )
    .bind(upn)
    .bind(name.trim())
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() != 1 {
        bail!("user {upn} already exists");
    }
    for g in groups {
        let g = g.trim();
        if g.is_empty() {
            bail!("--group must not be empty");
        }
        sqlx::query(
            "INSERT INTO user_groups (upn, group_name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(upn)
        .bind(g)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    audit::record(
        pool,
        Event::UserAdded,
        audit::Entry {
            upn: Some(upn),
            outcome: "ok",
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}

pub async fn set_policy(pool: &Pool, update: &PolicyUpdate) -> anyhow::Result<Policy> {
    let current = policy::load(pool).await?;
    let next = current.apply(update)?;
    policy::save(pool, &next).await?;
    let outcome = format!(
        "enabled={} target={} mode={} number_matching={} show_app_name={} show_location={}",
        next.enabled,
        next.target,
        next.mode.as_str(),
        next.number_matching,
        next.show_app_name,
        next.show_location
    );
    audit::record(
        pool,
        Event::PolicyChanged,
        audit::Entry {
            outcome: &outcome,
            ..Default::default()
        },
    )
    .await?;
    Ok(next)
}

/// Issues a one-time enrollment code for `upn` and returns the `phonesignin://enroll` URL.
/// Only SHA-256(code) is stored.
pub async fn registration_link(
    pool: &Pool,
    upn: &str,
    server_url: &Url,
    ttl_secs: u64,
) -> anyhow::Result<String> {
    authenticator_protocol::enroll::check_server_url(server_url)
        .context("--server-url must be https (or http on a loopback address)")?;
    let exists: Option<String> = sqlx::query_scalar("SELECT upn FROM users WHERE upn = $1")
        .bind(upn)
        .fetch_optional(pool)
        .await?;
    if exists.is_none() {
        bail!("no user {upn}");
    }
    let signer = store::server_signer(pool).await?;
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| anyhow::anyhow!("random source failed"))?;
    let code = b64(&bytes);
    let now = UnixMillis::now();
    sqlx::query(
        "INSERT INTO enrollment_codes (code_hash, upn, created_at, expires_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(code_hash(&code))
    .bind(upn)
    .bind(to_db_ms(now))
    .bind(to_db_ms(now.plus_secs(ttl_secs)))
    .execute(pool)
    .await?;
    audit::record(
        pool,
        Event::RegistrationLinkIssued,
        audit::Entry {
            upn: Some(upn),
            outcome: "ok",
            ..Default::default()
        },
    )
    .await?;
    Ok(EnrollmentUrl {
        server: server_url.clone(),
        code,
        server_fingerprint: signer.public_key().fingerprint(),
    }
    .to_url_string())
}
