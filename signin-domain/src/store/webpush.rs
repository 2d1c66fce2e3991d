//! The server's VAPID key for Web Push (migration 0008): one row, created once.

use super::{Pool, StoreResult};

/// The stored VAPID key: PKCS#8 and the public point, both base64url.
pub struct StoredVapidKey {
    pub private_key: String,
    pub public_key: String,
    pub created_at: i64,
}

impl std::fmt::Debug for StoredVapidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredVapidKey")
            .field("public_key", &self.public_key)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// The stored key; if there is none yet, stores `candidate` first. Several instances starting
/// at once all end up with the one key that won the insert.
pub async fn vapid_key_or_init(
    pool: &Pool,
    candidate: &StoredVapidKey,
) -> StoreResult<StoredVapidKey> {
    sqlx::query(
        "INSERT INTO webpush_vapid_key (id, private_key, public_key, created_at) \
         VALUES (1, $1, $2, $3) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&candidate.private_key)
    .bind(&candidate.public_key)
    .bind(candidate.created_at)
    .execute(pool)
    .await?;
    let (private_key, public_key, created_at): (String, String, i64) = sqlx::query_as(
        "SELECT private_key, public_key, created_at FROM webpush_vapid_key WHERE id = 1",
    )
    .fetch_one(pool)
    .await?;
    Ok(StoredVapidKey {
        private_key,
        public_key,
        created_at,
    })
}

/// Replaces the stored key (or stores the first one): `admin webpush-key rotate`.
pub async fn replace_vapid_key(pool: &Pool, key: &StoredVapidKey) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO webpush_vapid_key (id, private_key, public_key, created_at) \
         VALUES (1, $1, $2, $3) ON CONFLICT (id) DO UPDATE SET \
         private_key = excluded.private_key, public_key = excluded.public_key, \
         created_at = excluded.created_at",
    )
    .bind(&key.private_key)
    .bind(&key.public_key)
    .bind(key.created_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// The stored key, if one was created.
pub async fn vapid_key(pool: &Pool) -> StoreResult<Option<StoredVapidKey>> {
    let row: Option<(String, String, i64)> = sqlx::query_as(
        "SELECT private_key, public_key, created_at FROM webpush_vapid_key WHERE id = 1",
    )
    .fetch_optional(pool)
    .await?;
    Ok(
        row.map(|(private_key, public_key, created_at)| StoredVapidKey {
            private_key,
            public_key,
            created_at,
        }),
    )
}
