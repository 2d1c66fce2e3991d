//! Database access: the pool, migrations and the settings table (server key, server name).
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use authenticator_protocol::encoding::{b64, unb64};
use authenticator_protocol::{EcdsaSigner, UnixMillis};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::SqlitePool;

pub type Pool = SqlitePool;

pub const SERVER_KEY_SETTING: &str = "server_signing_key_pkcs8";
pub const SERVER_NAME_SETTING: &str = "server_name";
pub const ENROLLMENT_TTL_SETTING: &str = "enrollment_ttl_secs";
pub const DEFAULT_SERVER_NAME: &str = "Contoso";

/// Opens (creating if missing) the database at `url` (`sqlite://path`) and runs migrations.
pub async fn connect(url: &str) -> anyhow::Result<Pool> {
    let options = SqliteConnectOptions::from_str(url)
        .context("invalid --database URL (expected sqlite://path)")?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await
        .context("could not open the database")?;
    sqlx::migrate!("./migrations")
        .run(&pool)
        .await
        .context("database migration failed")?;
    Ok(pool)
}

/// Current time in Unix milliseconds, as stored in the database.
pub fn now_ms() -> i64 {
    to_db_ms(UnixMillis::now())
}

pub fn to_db_ms(t: UnixMillis) -> i64 {
    i64::try_from(t.millis()).unwrap_or(i64::MAX)
}

pub fn from_db_ms(ms: i64) -> UnixMillis {
    UnixMillis(u64::try_from(ms).unwrap_or(0))
}

pub async fn get_setting(pool: &Pool, name: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
        .bind(name)
        .fetch_optional(pool)
        .await
}

pub async fn set_setting(pool: &Pool, name: &str, value: &str) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO settings (name, value) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind(name)
    .bind(value)
    .execute(pool)
    .await?;
    Ok(())
}

/// Inserts `value` unless the setting exists, then returns the stored value (so two processes
/// racing to create it agree).
async fn get_or_init_setting(pool: &Pool, name: &str, value: &str) -> sqlx::Result<String> {
    sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .bind(value)
        .execute(pool)
        .await?;
    sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
        .bind(name)
        .fetch_one(pool)
        .await
}

/// The server's P-256 signing key, created on first use and kept in the settings table.
pub async fn server_signer(pool: &Pool) -> anyhow::Result<EcdsaSigner> {
    let stored = match get_setting(pool, SERVER_KEY_SETTING).await? {
        Some(v) => v,
        None => {
            let (_, pkcs8) = EcdsaSigner::generate().context("generating the server key")?;
            get_or_init_setting(pool, SERVER_KEY_SETTING, &b64(&pkcs8)).await?
        }
    };
    let pkcs8 = unb64("server_signing_key", &stored).context("stored server key")?;
    EcdsaSigner::from_pkcs8(&pkcs8).context("stored server key")
}

pub async fn server_name(pool: &Pool) -> sqlx::Result<String> {
    Ok(get_setting(pool, SERVER_NAME_SETTING)
        .await?
        .unwrap_or_else(|| DEFAULT_SERVER_NAME.to_owned()))
}

pub async fn enrollment_ttl_secs(pool: &Pool) -> anyhow::Result<u64> {
    match get_setting(pool, ENROLLMENT_TTL_SETTING).await? {
        Some(v) => v.parse().context("stored enrollment TTL"),
        None => Ok(authenticator_protocol::wire::DEFAULT_ENROLLMENT_TTL_SECS),
    }
}
