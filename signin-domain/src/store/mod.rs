//! Database access: the pool, migrations and the settings table (server key, server name).
//!
//! One code path for both backends: sqlx's `Any` driver over SQLite (the default, embedded,
//! `sqlite://path`) or PostgreSQL (`postgres://...`), running the same migrations
//! (`migrations/`). Rules for queries and migrations, so that they behave the same on both:
//! - placeholders are `$1`, `$2`, ...; binds are `i64`, `String`/`&str` and `Option`s of them;
//! - column types are TEXT, BIGINT (times in Unix milliseconds, counters) and INTEGER; booleans
//!   are INTEGER 0/1 columns, bound as `i64::from(b)` and read as `i64` (`!= 0`): a `bool` bind
//!   does not compare with or store into an INTEGER column on PostgreSQL, and the `Any` driver
//!   cannot read SQLite `BOOLEAN` columns;
//! - bytes are stored as base64url TEXT (no BLOB/BYTEA: their type names are not portable);
//! - identifiers are random TEXT, no AUTOINCREMENT/SERIAL; aggregates other than COUNT/MIN/MAX
//!   are `CAST(... AS BIGINT)` (PostgreSQL's `SUM(bigint)` is NUMERIC, which `Any` cannot read);
//! - state changes that must happen once are single conditional statements
//!   (`UPDATE ... WHERE status = 'pending'`), atomic on both; a transaction that reads, then
//!   writes rows about one user first takes [`lock_user`].
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context};
use authenticator_protocol::encoding::{b64, unb64};
use authenticator_protocol::{EcdsaSigner, UnixMillis};
use sqlx::any::AnyPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{ConnectOptions, Connection};

pub mod applications;
pub mod audit;
pub mod cache;
pub mod devices;
pub mod enrollment;
pub mod fallback;
pub mod group_commit;
pub mod moving;
pub mod notify;
pub mod oidc;
pub mod passes;
pub mod policy;
pub mod push_channels;
pub mod requests;
pub mod risk;
pub mod sessions;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trust;
pub mod users;
pub mod webpush;

/// A database failure. Callers see it as an internal error; the cause is logged once.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored value that does not parse (a bug or a damaged database).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A row a write depended on changed since it was read: nothing was written; read again.
    #[error("{0} changed since it was read")]
    Changed(&'static str),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The connection pool every query runs on (SQLite or PostgreSQL).
pub type Pool = sqlx::AnyPool;
/// One connection (e.g. `&mut *tx` of `pool.begin()`).
pub type Conn = sqlx::AnyConnection;

/// The `tracing` target under which the database driver reports each statement it runs (one
/// event per statement): what the server's statement counter counts (`signin-server`'s
/// `statements`). Named here because only the store knows which driver it uses.
pub const STATEMENT_LOG_TARGET: &str = "sqlx::query";

pub const SERVER_KEY_SETTING: &str = "server_signing_key_pkcs8";
pub const SERVER_NAME_SETTING: &str = "server_name";
pub const ENROLLMENT_TTL_SETTING: &str = "enrollment_ttl_secs";
/// The URL users and phones reach the server at (`serve --public-url`).
pub const PUBLIC_URL_SETTING: &str = "public_url";
pub const DEFAULT_SERVER_NAME: &str = "Contoso";

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite://path` (one server process per database file).
    Sqlite,
    /// `postgres://` or `postgresql://` (several server instances may share it).
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> anyhow::Result<Backend> {
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
        match scheme {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => bail!("unsupported database URL (expected sqlite://path or postgres://...)"),
        }
    }
}

/// Opens the database at `url` and runs the migrations. SQLite: `sqlite://path`, the file is
/// created if missing (mode `0600`; a file the group or others may access is refused) and put
/// in WAL mode. PostgreSQL: `postgres://user:password@host/db` (the database must exist;
/// `?sslmode=require` etc. as usual).
pub async fn connect(url: &str) -> anyhow::Result<Pool> {
    sqlx::any::install_default_drivers();
    let backend = Backend::of_url(url)?;
    if backend == Backend::Sqlite {
        // Create the file and switch it to WAL once (the mode is stored in the file); every
        // pooled connection then gets sqlx's defaults: foreign keys on, 5 s busy timeout.
        let options = SqliteConnectOptions::from_str(url)
            .context("invalid --database URL (expected sqlite://path)")?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let file = options.get_filename().to_owned();
        protect_sqlite_file(&file)?;
        let conn = options
            .connect()
            .await
            .context("could not open the database")?;
        conn.close().await?;
        // SQLite creates `-wal`/`-shm` with the database file's mode; make sure of it.
        restrict_sqlite_side_files(&file)?;
    }
    let pool = AnyPoolOptions::new()
        .max_connections(match backend {
            Backend::Sqlite => 8,
            Backend::Postgres => 16,
        })
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    // WAL with synchronous = NORMAL: a commit is durable once it is in the
                    // WAL, which survives a killed server process; only an OS crash or power
                    // loss can roll back the last commits (fsync at checkpoints, not at every
                    // commit). About 1.8x the ceremonies per second of FULL (PERFORMANCE.md);
                    // OPERATIONS.md "Durability" says what that can cost.
                    sqlx::query("PRAGMA synchronous = NORMAL")
                        .execute(conn)
                        .await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await
        .context("could not open the database")?;
    sqlx::migrate!("./migrations")
        .run(&pool)
        .await
        .context("database migration failed")?;
    Ok(pool)
}

/// The files of a SQLite database: the database itself and its WAL and shared-memory files.
fn sqlite_files(file: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut name = file.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [file.to_owned(), with("-wal"), with("-shm")]
}

/// The database holds the server's signing key and the password hashes: a new file is created
/// `0600` (owner only), and an existing file (or its `-wal`/`-shm`) that the group or others
/// may read or write is refused, naming the path and the fix. In-memory databases pass.
#[cfg(unix)]
fn protect_sqlite_file(file: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let name = file.to_string_lossy();
    if name.is_empty() || name == ":memory:" || name.starts_with("file:") {
        return Ok(());
    }
    for path in sqlite_files(file) {
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("database file {}", path.display())),
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "database file {path} has mode {mode:04o}: it holds the server signing key and \
                 password hashes and must be readable by its owner only; run `chmod 600 {path}`",
                path = path.display()
            );
        }
    }
    if !file.exists() {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(file)
        {
            Ok(_) => {}
            // Created meanwhile by someone else: SQLite opens it, and the next start checks it.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(e).with_context(|| format!("creating database file {}", file.display()))
            }
        }
        // A umask cannot widen `mode`, but make the result exact whatever it is.
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod 600 {}", file.display()))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn protect_sqlite_file(_file: &Path) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn restrict_sqlite_side_files(file: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for path in sqlite_files(file).into_iter().skip(1) {
        if let Ok(meta) = std::fs::metadata(&path) {
            if meta.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("chmod 600 {}", path.display()))?;
            }
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict_sqlite_side_files(_file: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// Serializes transactions about one user, across connections and server instances: run it
/// first in a transaction that reads rows of `upn` and then writes based on them (e.g.
/// "supersede the pending request, insert a new one"). PostgreSQL holds the user's row lock
/// until commit; SQLite takes its database write lock. A no-op if the user does not exist.
pub async fn lock_user(conn: &mut Conn, upn: &str) -> StoreResult<()> {
    sqlx::query("UPDATE users SET display_name = display_name WHERE upn = $1")
        .bind(upn)
        .execute(conn)
        .await?;
    Ok(())
}

/// `%part%` for `LIKE … ESCAPE '\'` against a `LOWER(…)` column: `part` in lower case, its
/// own wildcards escaped (the audit log's and the user search's "contains").
pub(crate) fn contains_pattern(part: &str) -> String {
    let mut pattern = String::from("%");
    for c in part.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
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

/// The server's one expiry rule for what it stores with an `expires_at` in database
/// milliseconds (sign-in requests, codes, tokens, passes, CIBA requests): the protocol's
/// [`UnixMillis::is_expired_at`], which the phone uses too (expired at `expires_at` itself).
/// SQL states the same rule as `expires_at > now` for what is still valid.
pub fn is_expired(expires_at: i64, now: i64) -> bool {
    from_db_ms(expires_at).is_expired_at(from_db_ms(now))
}

pub async fn get_setting(pool: &Pool, name: &str) -> StoreResult<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await?,
    )
}

pub async fn set_setting(pool: &Pool, name: &str, value: &str) -> StoreResult<()> {
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
async fn get_or_init_setting(pool: &Pool, name: &str, value: &str) -> StoreResult<String> {
    sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .bind(value)
        .execute(pool)
        .await?;
    Ok(
        sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_one(pool)
            .await?,
    )
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

pub async fn server_name(pool: &Pool) -> StoreResult<String> {
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

#[cfg(test)]
mod expiry_tests {
    use super::is_expired;

    #[test]
    fn stored_things_expire_at_their_expiry_instant_as_on_the_phone() {
        assert!(!is_expired(1_000, 999));
        assert!(is_expired(1_000, 1_000));
        assert!(is_expired(1_000, 1_001));
        // A negative stored time (never written) counts as the epoch: long expired.
        assert!(is_expired(-5, 0));
    }
}
