//! What the trust model (`crate::trust`) reads and ends: a user's standing (disabled, paused)
//! with one credential's (a device: whose, held, held until), due holds released, and every
//! session and token a credential or a user made.
//!
//! Ending takes the user's lock ([`lock_user`]) first, as does every transaction that writes
//! tokens (`store::oidc::store_tokens`): a token written concurrently is either written before
//! the end (and ended with the rest) or finds, under the lock, that its credential is gone.
use super::risk::UserRisk;
use super::{lock_user, Conn, Pool, StoreResult};

/// One user's standing and, when asked, one device's, read together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    pub disabled: bool,
    /// Unix ms until which sign-ins are paused (0: not paused).
    pub paused_until: i64,
    /// The device asked about, if it exists.
    pub device: Option<DeviceStanding>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceStanding {
    pub owner: String,
    pub held: bool,
    pub held_until: Option<i64>,
}

/// The standing of `upn` and of device `device`; `None` when the user does not exist.
pub async fn standing(
    pool: &Pool,
    upn: &str,
    device: Option<&str>,
) -> StoreResult<Option<Standing>> {
    let mut conn = pool.acquire().await?;
    standing_on(&mut conn, upn, device).await
}

/// [`standing`] on a connection the caller holds (inside a transaction that took the user's
/// lock, to decide again at the instant something is written).
pub(super) async fn standing_on(
    conn: &mut Conn,
    upn: &str,
    device: Option<&str>,
) -> StoreResult<Option<Standing>> {
    type Row = (i64, Option<i64>, Option<String>, Option<i64>, Option<i64>);
    let row: Option<Row> = sqlx::query_as(
        "SELECT u.disabled, r.paused_until, d.upn, d.awaiting_approval, d.held_until \
         FROM users u LEFT JOIN user_risk r ON r.upn = u.upn \
         LEFT JOIN devices d ON d.account_id = $2 WHERE u.upn = $1",
    )
    .bind(upn)
    .bind(device.unwrap_or(""))
    .fetch_optional(conn)
    .await?;
    Ok(row.map(
        |(disabled, paused_until, owner, held, held_until)| Standing {
            disabled: disabled != 0,
            paused_until: paused_until.unwrap_or(0),
            device: owner.map(|owner| DeviceStanding {
                owner,
                held: held.unwrap_or(0) != 0,
                held_until,
            }),
        },
    ))
}

/// What a sign-in start reads first, in one statement: whether the application that starts
/// it is (still) registered, the user's standing without a device (`None`: no such user), the
/// cache generation (`cache`), so that the copies it then uses are current, and the
/// anti-fatigue rows the start's checks begin from (each with its version, as
/// `risk::load`: a row changed meanwhile fails its versioned write and is read again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartView {
    pub application_registered: bool,
    pub user: Option<Standing>,
    pub generation: Option<String>,
    /// The user's `user_risk` row.
    pub user_risk: Option<(UserRisk, i64)>,
    /// The `start_limits` rows of the start's subject and of the user's ceiling.
    pub subject_limit: Option<(UserRisk, i64)>,
    pub ceiling_limit: Option<(UserRisk, i64)>,
    /// The user's devices, oldest enrollment first (`devices::targets` picks who gets it).
    pub devices: Vec<super::devices::DeviceForSignIn>,
}

/// The names [`start_view`] gives the columns of one joined risk row (`r_`, `s_`, `c_`).
fn risk_columns(alias: &str) -> String {
    [
        "bucket_millitokens",
        "bucket_at",
        "strikes",
        "blocked_until",
        "paused_until",
        "risk",
        "reports",
        "last_report_at",
        "version",
    ]
    .iter()
    .map(|c| format!("{alias}.{c} AS {alias}_{c}"))
    .collect::<Vec<_>>()
    .join(", ")
}

/// One joined risk row of [`start_view`] (columns `{alias}_…`), if the join found one.
fn risk_row(row: &sqlx::any::AnyRow, alias: &str) -> StoreResult<Option<(UserRisk, i64)>> {
    use sqlx::Row;
    let get = |c: &str| row.try_get::<Option<i64>, _>(format!("{alias}_{c}").as_str());
    // `version` is NOT NULL: absent only when there is no row.
    let Some(version) = get("version")? else {
        return Ok(None);
    };
    let need = |c: &str| -> StoreResult<i64> {
        get(c)?.ok_or_else(|| super::StoreError::Corrupt(format!("{alias}.{c} is NULL")))
    };
    Ok(Some((
        UserRisk {
            bucket_millitokens: need("bucket_millitokens")?,
            bucket_at: need("bucket_at")?,
            strikes: need("strikes")?,
            blocked_until: need("blocked_until")?,
            paused_until: need("paused_until")?,
            risk: need("risk")?,
            reports: need("reports")?,
            last_report_at: get("last_report_at")?,
        },
        version,
    )))
}

pub async fn start_view(
    pool: &Pool,
    upn: &str,
    client_id: &str,
    limit_subject: &str,
    ceiling_subject: &str,
) -> StoreResult<StartView> {
    let sql = format!(
        "SELECT (SELECT COUNT(*) FROM applications WHERE client_id = $2) AS apps, \
         (SELECT value FROM settings WHERE name = $3) AS generation, u.disabled AS disabled, \
         {}, {}, {}, {} \
         FROM (SELECT 1 AS one) x LEFT JOIN users u ON u.upn = $1 \
         LEFT JOIN user_risk r ON r.upn = u.upn \
         LEFT JOIN start_limits s ON s.subject = $4 \
         LEFT JOIN start_limits c ON c.subject = $5 \
         LEFT JOIN devices d ON d.upn = u.upn \
         ORDER BY d.enrolled_at, d.account_id",
        risk_columns("r"),
        risk_columns("s"),
        risk_columns("c"),
        super::devices::FOR_SIGN_IN_COLUMNS,
    );
    // One row per device of the user (one row when there is none), the rest repeated.
    let rows = sqlx::query(&sql)
        .bind(upn)
        .bind(client_id)
        .bind(super::cache::GENERATION_SETTING)
        .bind(limit_subject)
        .bind(ceiling_subject)
        .fetch_all(pool)
        .await?;
    let devices = rows
        .iter()
        .map(super::devices::device_for_sign_in)
        .filter_map(Result::transpose)
        .collect::<StoreResult<Vec<_>>>()?;
    let Some(row) = rows.first() else {
        return Err(super::StoreError::Corrupt(
            "the start's view read no row".into(),
        ));
    };
    use sqlx::Row;
    let apps: i64 = row.try_get("apps")?;
    let generation: Option<String> = row.try_get("generation")?;
    let disabled: Option<i64> = row.try_get("disabled")?;
    let user_risk = risk_row(row, "r")?;
    Ok(StartView {
        application_registered: apps > 0,
        user: disabled.map(|disabled| Standing {
            disabled: disabled != 0,
            paused_until: user_risk.map_or(0, |(r, _)| r.paused_until),
            device: None,
        }),
        generation,
        user_risk,
        subject_limit: risk_row(row, "s")?,
        ceiling_limit: risk_row(row, "c")?,
        devices,
    })
}

/// Activates the user's devices whose waiting period ended by `now`; returns their ids.
pub async fn release_due_holds(pool: &Pool, upn: &str, now: i64) -> StoreResult<Vec<String>> {
    // One conditional statement: concurrent callers release each device once, and a sign-in
    // start (which calls this) pays one round trip when nothing is due.
    let mut released: Vec<String> = sqlx::query_scalar(
        "UPDATE devices SET awaiting_approval = 0, held_until = NULL \
         WHERE upn = $1 AND awaiting_approval = 1 AND held_until IS NOT NULL \
         AND held_until <= $2 RETURNING account_id",
    )
    .bind(upn)
    .bind(now)
    .fetch_all(pool)
    .await?;
    released.sort();
    Ok(released)
}

/// Whose sessions and tokens end.
#[derive(Debug, Clone, Copy)]
pub enum Made<'a> {
    /// Everything this device made (its approvals, its TOTP codes).
    ByDevice(&'a str),
    /// Everything of this user, however made.
    ForUser(&'a str),
}

/// How many of each ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ended {
    pub web_sessions: u64,
    pub access_tokens: u64,
    pub codes: u64,
    /// Refresh tokens, spent ones of their families included.
    pub refresh_tokens: u64,
}

/// Ends, in one transaction, the web sessions (and what OpenID Connect recorded about them),
/// the unredeemed authorization codes, the access tokens and the refresh tokens that `made`
/// covers.
pub async fn end_sessions(pool: &Pool, made: Made<'_>) -> StoreResult<Ended> {
    let mut tx = pool.begin().await?;
    let ended = end_sessions_on(&mut tx, made).await?;
    tx.commit().await?;
    Ok(ended)
}

/// [`end_sessions`] inside a transaction the caller holds (a device's removal).
pub(super) async fn end_sessions_on(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    made: Made<'_>,
) -> StoreResult<Ended> {
    let (column, key) = match made {
        Made::ByDevice(d) => ("device", d),
        Made::ForUser(u) => ("upn", u),
    };
    match made {
        Made::ForUser(u) => lock_user(tx, u).await?,
        Made::ByDevice(d) => {
            sqlx::query(
                "UPDATE users SET display_name = display_name \
                 WHERE upn = (SELECT upn FROM devices WHERE account_id = $1)",
            )
            .bind(d)
            .execute(&mut **tx)
            .await?;
        }
    }
    sqlx::query(&format!(
        "DELETE FROM oidc_session_auth WHERE {column} = $1 OR session_hash IN \
         (SELECT id_hash FROM web_sessions WHERE {column} = $1)"
    ))
    .bind(key)
    .execute(&mut **tx)
    .await?;
    let web_sessions = sqlx::query(&format!("DELETE FROM web_sessions WHERE {column} = $1"))
        .bind(key)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    let codes = sqlx::query(&format!(
        "DELETE FROM oidc_codes WHERE {column} = $1 AND used_at IS NULL"
    ))
    .bind(key)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    let access_tokens = sqlx::query(&format!(
        "DELETE FROM oidc_access_tokens WHERE {column} = $1"
    ))
    .bind(key)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    let refresh_tokens = sqlx::query(&format!(
        "DELETE FROM oidc_refresh_tokens WHERE {column} = $1"
    ))
    .bind(key)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(Ended {
        web_sessions,
        access_tokens,
        codes,
        refresh_tokens,
    })
}

/// What ending one browser's session ended, and whom to tell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndedSession {
    pub ended: Ended,
    /// The session's OpenID Connect session id, if it had signed in.
    pub sid: Option<String>,
    /// The clients the session issued codes to.
    pub clients: Vec<String>,
}

/// Ends, in one transaction, one web session (by its id hash): its row, what OpenID Connect
/// recorded about it, the unredeemed codes it issued, the access tokens those codes gave, and
/// the list of clients it issued codes to (returned, for Back-Channel Logout).
pub async fn end_web_session(pool: &Pool, id_hash: &str) -> StoreResult<EndedSession> {
    let mut tx = pool.begin().await?;
    let sid: Option<String> = sqlx::query_scalar(
        "SELECT sid FROM oidc_session_auth WHERE session_hash = $1 AND sid IS NOT NULL",
    )
    .bind(id_hash)
    .fetch_optional(&mut *tx)
    .await?;
    let mut ended = Ended::default();
    let mut clients = Vec::new();
    if let Some(sid) = sid.as_deref() {
        ended.access_tokens = sqlx::query(
            "DELETE FROM oidc_access_tokens WHERE grant_hash IN \
             (SELECT code_hash FROM oidc_codes WHERE sid = $1)",
        )
        .bind(sid)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        ended.codes = sqlx::query("DELETE FROM oidc_codes WHERE sid = $1 AND used_at IS NULL")
            .bind(sid)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        clients = sqlx::query_scalar(
            "SELECT client_id FROM oidc_session_clients WHERE sid = $1 ORDER BY client_id",
        )
        .bind(sid)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM oidc_session_clients WHERE sid = $1")
            .bind(sid)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("DELETE FROM oidc_session_auth WHERE session_hash = $1")
        .bind(id_hash)
        .execute(&mut *tx)
        .await?;
    ended.web_sessions = sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1")
        .bind(id_hash)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(EndedSession {
        ended,
        sid,
        clients,
    })
}

/// Disables or enables a user; whether the user exists.
pub async fn set_disabled(pool: &Pool, upn: &str, disabled: bool) -> StoreResult<bool> {
    let done = sqlx::query("UPDATE users SET disabled = $2 WHERE upn = $1")
        .bind(upn)
        .bind(i64::from(disabled))
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes the backup codes a session of `device` created; how many sets (0 or 1 per user).
pub async fn revoke_backup_codes_made_by(pool: &Pool, device: &str) -> StoreResult<u64> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "DELETE FROM backup_codes WHERE upn IN \
         (SELECT upn FROM backup_code_sets WHERE created_by_device = $1)",
    )
    .bind(device)
    .execute(&mut *tx)
    .await?;
    let sets = sqlx::query("DELETE FROM backup_code_sets WHERE created_by_device = $1")
        .bind(device)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(sets)
}
