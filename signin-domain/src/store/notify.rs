//! PostgreSQL `LISTEN`/`NOTIFY`, for wake-ups shared between server instances
//! (`delivery::cluster`).
use sqlx::postgres::PgListener;

use super::{Pool, StoreResult};

/// One connection listening on one channel.
pub struct Listener(PgListener);

impl Listener {
    pub async fn connect(url: &str, channel: &str) -> StoreResult<Self> {
        let mut listener = PgListener::connect(url).await?;
        listener.listen(channel).await?;
        Ok(Listener(listener))
    }

    /// The next notification's payload; `None` when the connection was lost.
    pub async fn recv(&mut self) -> StoreResult<Option<String>> {
        Ok(self.0.try_recv().await?.map(|n| n.payload().to_owned()))
    }
}

pub async fn notify(pool: &Pool, channel: &str, payload: &str) -> StoreResult<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(payload)
        .execute(pool)
        .await?;
    Ok(())
}
