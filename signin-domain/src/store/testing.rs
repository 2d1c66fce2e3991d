//! Databases for tests (feature `testing`): a SQLite file in a temporary directory by default,
//! or a fresh PostgreSQL database per test when `TEST_DATABASE_URL` names a PostgreSQL server
//! (`cargo xtask test` starts a throwaway cluster and runs the suites both ways).
use anyhow::{bail, Context};
use rand::Rng;
use sqlx::{Connection, Executor};

use crate::store::Backend;

/// The environment variable naming the PostgreSQL server the tests create databases on,
/// e.g. `postgres://postgres@127.0.0.1:5433/postgres`.
pub const TEST_DATABASE_ENV: &str = "TEST_DATABASE_URL";

/// A database of its own for one test. SQLite files go away with it; PostgreSQL databases stay
/// until the throwaway cluster is deleted.
pub struct TestDatabase {
    /// What to pass as `--database` / `ServeConfig::database`.
    pub url: String,
    pub backend: Backend,
    _dir: tempfile::TempDir,
}

impl TestDatabase {
    pub async fn create() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let (url, backend) = match postgres_server()? {
            Some(server) => (create_postgres_database(&server).await?, Backend::Postgres),
            None => (
                format!("sqlite://{}", dir.path().join("signin.db").display()),
                Backend::Sqlite,
            ),
        };
        Ok(TestDatabase {
            url,
            backend,
            _dir: dir,
        })
    }

    /// `create` for synchronous tests (it runs its own small runtime).
    pub fn create_blocking() -> anyhow::Result<Self> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(Self::create())
    }
}

/// The PostgreSQL server URL from `TEST_DATABASE_URL`, if set (an error if it is not PostgreSQL).
pub fn postgres_server() -> anyhow::Result<Option<String>> {
    match std::env::var(TEST_DATABASE_ENV) {
        Ok(url) if !url.trim().is_empty() => {
            if Backend::of_url(&url)? != Backend::Postgres {
                bail!("{TEST_DATABASE_ENV} must be a postgres:// URL");
            }
            Ok(Some(url))
        }
        _ => Ok(None),
    }
}

/// Creates a database with a random name on `server` and returns its URL.
pub async fn create_postgres_database(server: &str) -> anyhow::Result<String> {
    let name = format!("signin_test_{:016x}", rand::rngs::OsRng.gen::<u64>());
    let mut conn = sqlx::PgConnection::connect(server)
        .await
        .with_context(|| format!("connecting to {TEST_DATABASE_ENV}"))?;
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .context("CREATE DATABASE")?;
    conn.close().await?;
    let mut url = url::Url::parse(server).context(TEST_DATABASE_ENV)?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}
