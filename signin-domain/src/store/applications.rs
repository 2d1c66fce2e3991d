//! Registered applications (`applications`).
use super::{Pool, StoreResult};

/// One registered application as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ApplicationRow {
    pub client_id: String,
    pub name: String,
    /// SHA-256 (base64url) of the secret; `None` for the server's own pages.
    pub secret_hash: Option<String>,
    pub builtin: i64,
    pub created_at: i64,
}

const COLUMNS: &str = "client_id, name, secret_hash, builtin, created_at";

/// Inserts an application; `false` (nothing written) when the name is taken.
pub async fn insert(pool: &Pool, row: &ApplicationRow) -> StoreResult<bool> {
    let done = sqlx::query(
        "INSERT INTO applications (client_id, name, secret_hash, builtin, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(&row.client_id)
    .bind(&row.name)
    .bind(row.secret_hash.as_deref())
    .bind(row.builtin)
    .bind(row.created_at)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn find(pool: &Pool, client_id: &str) -> StoreResult<Option<ApplicationRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM applications WHERE client_id = $1"
    ))
    .bind(client_id)
    .fetch_optional(pool)
    .await?)
}

/// Every application, by name.
pub async fn all(pool: &Pool) -> StoreResult<Vec<ApplicationRow>> {
    Ok(
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM applications ORDER BY name"))
            .fetch_all(pool)
            .await?,
    )
}

/// Removes a registered (not built-in) application, and with it the access and refresh tokens
/// issued to it, in one transaction; `false` if there is none.
pub async fn remove(pool: &Pool, client_id: &str) -> StoreResult<bool> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query("DELETE FROM applications WHERE client_id = $1 AND builtin = 0")
        .bind(client_id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    for table in ["oidc_access_tokens", "oidc_refresh_tokens"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE client_id = $1"))
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
    }
    // Copies of it in every process go at their next sign-in start.
    super::cache::changed(&mut tx).await?;
    tx.commit().await?;
    Ok(true)
}
