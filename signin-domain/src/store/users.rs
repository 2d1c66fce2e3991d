//! Users, their groups and their password hashes.
use super::{now_ms, Pool, StoreResult};

/// A user as stored: the UPN, the display name and the groups (sorted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub upn: String,
    pub display_name: String,
    pub groups: Vec<String>,
}

pub async fn exists(pool: &Pool, upn: &str) -> StoreResult<bool> {
    let found: Option<String> = sqlx::query_scalar("SELECT upn FROM users WHERE upn = $1")
        .bind(upn)
        .fetch_optional(pool)
        .await?;
    Ok(found.is_some())
}

/// The user's groups, sorted by name.
pub async fn groups_of(pool: &Pool, upn: &str) -> StoreResult<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT group_name FROM user_groups WHERE upn = $1 ORDER BY group_name")
            .bind(upn)
            .fetch_all(pool)
            .await?,
    )
}

/// The user with display name and groups, if they exist.
pub async fn find(pool: &Pool, upn: &str) -> StoreResult<Option<UserRecord>> {
    let name: Option<String> = sqlx::query_scalar("SELECT display_name FROM users WHERE upn = $1")
        .bind(upn)
        .fetch_optional(pool)
        .await?;
    let Some(display_name) = name else {
        return Ok(None);
    };
    Ok(Some(UserRecord {
        upn: upn.to_owned(),
        display_name,
        groups: groups_of(pool, upn).await?,
    }))
}

/// The attributes a user's OpenID Connect claims come from (`admin user set`): email address
/// (lower case) and whether it is verified, given and family names. `None` when not set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    pub email: Option<String>,
    pub email_verified: bool,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
}

/// `email`, `email_verified`, `given_name`, `family_name` as read.
type AttributesRow = (Option<String>, i64, Option<String>, Option<String>);

/// The user's attributes, if the user exists.
pub async fn attributes(pool: &Pool, upn: &str) -> StoreResult<Option<Attributes>> {
    let row: Option<AttributesRow> = sqlx::query_as(
        "SELECT email, email_verified, given_name, family_name FROM users WHERE upn = $1",
    )
    .bind(upn)
    .fetch_optional(pool)
    .await?;
    Ok(
        row.map(|(email, verified, given_name, family_name)| Attributes {
            email,
            email_verified: verified != 0,
            given_name,
            family_name,
        }),
    )
}

/// Replaces the user's attributes; `false` when there is no such user.
pub async fn set_attributes(pool: &Pool, upn: &str, a: &Attributes) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE users SET email = $2, email_verified = $3, given_name = $4, family_name = $5 \
         WHERE upn = $1",
    )
    .bind(upn)
    .bind(a.email.as_deref())
    .bind(i64::from(a.email_verified))
    .bind(a.given_name.as_deref())
    .bind(a.family_name.as_deref())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Inserts the user and their groups in one transaction; `false` (and nothing written) if the
/// UPN exists.
pub async fn insert(pool: &Pool, upn: &str, name: &str, groups: &[&str]) -> StoreResult<bool> {
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO users (upn, display_name, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (upn) DO NOTHING",
    )
    .bind(upn)
    .bind(name)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() != 1 {
        return Ok(false);
    }
    for g in groups {
        add_to_group_in(&mut tx, upn, g).await?;
    }
    tx.commit().await?;
    Ok(true)
}

async fn add_to_group_in(conn: &mut super::Conn, upn: &str, group: &str) -> StoreResult<()> {
    sqlx::query("INSERT INTO user_groups (upn, group_name) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(upn)
        .bind(group)
        .execute(&mut *conn)
        .await?;
    // Copies of the user's groups in every process go at their next sign-in start.
    super::cache::changed(conn).await?;
    Ok(())
}

/// Adds an existing user to a group (a no-op if they are a member already).
pub async fn add_to_group(pool: &Pool, upn: &str, group: &str) -> StoreResult<()> {
    let mut conn = pool.acquire().await?;
    add_to_group_in(&mut conn, upn, group).await
}

/// One line of the admin users page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserOverview {
    pub upn: String,
    pub display_name: String,
    pub has_password: bool,
    /// Enrolled phones (accounts).
    pub devices: i64,
    /// Of those, with phone sign-in enabled.
    pub phone_sign_in_devices: i64,
}

/// Every user, ordered by UPN, with password and device counts.
pub async fn overview(pool: &Pool) -> StoreResult<Vec<UserOverview>> {
    let rows = sqlx::query_as(&format!(
        "SELECT {OVERVIEW_COLUMNS} FROM users u ORDER BY u.upn"
    ))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(overview_of).collect())
}

/// What [`UserOverview`] shows of `users u`, as [`overview_of`] reads it.
const OVERVIEW_COLUMNS: &str = "u.upn, u.display_name, \
     (SELECT p.upn FROM user_passwords p WHERE p.upn = u.upn), \
     (SELECT COUNT(*) FROM devices d WHERE d.upn = u.upn), \
     (SELECT COUNT(*) FROM devices d WHERE d.upn = u.upn \
        AND d.passwordless_public_key IS NOT NULL)";

fn overview_of(
    (upn, display_name, password, devices, phone_sign_in_devices): (
        String,
        String,
        Option<String>,
        i64,
        i64,
    ),
) -> UserOverview {
    UserOverview {
        upn,
        display_name,
        has_password: password.is_some(),
        devices,
        phone_sign_in_devices,
    }
}

/// The users whose UPN or display name contains `part` (case-insensitive), ordered by UPN,
/// at most `limit` (the helpdesk's search).
pub async fn search(pool: &Pool, part: &str, limit: i64) -> StoreResult<Vec<UserOverview>> {
    let pattern = super::contains_pattern(part.trim());
    let rows = sqlx::query_as(&format!(
        "SELECT {OVERVIEW_COLUMNS} FROM users u WHERE LOWER(u.upn) LIKE $1 ESCAPE '\\' \
         OR LOWER(u.display_name) LIKE $1 ESCAPE '\\' ORDER BY u.upn LIMIT $2"
    ))
    .bind(pattern)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(overview_of).collect())
}

/// Every (upn, group) membership, ordered by group, then UPN.
pub async fn memberships(pool: &Pool) -> StoreResult<Vec<(String, String)>> {
    Ok(
        sqlx::query_as("SELECT upn, group_name FROM user_groups ORDER BY group_name, upn")
            .fetch_all(pool)
            .await?,
    )
}

/// Sets or replaces the user's password hash (PHC string).
pub async fn set_password_hash(pool: &Pool, upn: &str, phc: &str) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO user_passwords (upn, phc, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (upn) DO UPDATE SET phc = excluded.phc, updated_at = excluded.updated_at",
    )
    .bind(upn)
    .bind(phc)
    .bind(now_ms())
    .execute(pool)
    .await?;
    Ok(())
}

/// The user's password hash (PHC string), if they have a password.
pub async fn password_hash(pool: &Pool, upn: &str) -> StoreResult<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT phc FROM user_passwords WHERE upn = $1")
            .bind(upn)
            .fetch_optional(pool)
            .await?,
    )
}

/// Every column that holds a user's UPN besides `users.upn` (the audit log keeps what it
/// recorded). [`rename`] moves them.
const UPN_COLUMNS: &[(&str, &str)] = &[
    ("user_groups", "upn"),
    ("user_passwords", "upn"),
    ("enrollment_codes", "upn"),
    ("devices", "upn"),
    ("signin_requests", "upn"),
    ("web_sessions", "upn"),
    ("web_sessions", "pending_upn"),
    ("user_risk", "upn"),
    ("temporary_passes", "upn"),
    ("oidc_subjects", "upn"),
    ("oidc_session_auth", "upn"),
    ("oidc_codes", "upn"),
    ("oidc_access_tokens", "upn"),
    ("ciba_requests", "upn"),
    ("totp_secrets", "upn"),
    ("backup_code_sets", "upn"),
    ("backup_codes", "upn"),
    ("fallback_tries", "upn"),
];

/// Every stored UPN, sorted.
pub async fn all_upns(pool: &Pool) -> StoreResult<Vec<String>> {
    Ok(sqlx::query_scalar("SELECT upn FROM users ORDER BY upn")
        .fetch_all(pool)
        .await?)
}

/// Renames user `from` to `to` with everything that is theirs, in one transaction (the new
/// row first, then every reference, then the old row, so foreign keys hold throughout).
/// `false`, with nothing written, when `from` does not exist or `to` does.
pub async fn rename(pool: &Pool, from: &str, to: &str) -> StoreResult<bool> {
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO users (upn, display_name, created_at, disabled, email, email_verified, \
         given_name, family_name) \
         SELECT $2, display_name, created_at, disabled, email, email_verified, given_name, \
         family_name FROM users WHERE upn = $1 \
         AND NOT EXISTS (SELECT 1 FROM users WHERE upn = $2)",
    )
    .bind(from)
    .bind(to)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() != 1 {
        return Ok(false);
    }
    // Rows a user has at most one of: a leftover under the new name (fallback tries of an
    // unknown UPN typed before) gives way to the user's own.
    sqlx::query("DELETE FROM fallback_tries WHERE upn = $1")
        .bind(to)
        .execute(&mut *tx)
        .await?;
    for (table, column) in UPN_COLUMNS {
        sqlx::query(&format!(
            "UPDATE {table} SET {column} = $2 WHERE {column} = $1"
        ))
        .bind(from)
        .bind(to)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("DELETE FROM users WHERE upn = $1")
        .bind(from)
        .execute(&mut *tx)
        .await?;
    // Groups are cached by UPN.
    super::cache::changed(&mut tx).await?;
    tx.commit().await?;
    Ok(true)
}
