//! OpenID Connect and CIBA state (`migrations/0006_oidc.sql`, `0015_refresh_tokens.sql`):
//! clients (the `applications` rows with redirect URIs), signing keys, subjects, browser
//! authorizations, codes, access and refresh tokens and CIBA requests. Secrets are stored as
//! hashes; the callers hash.
use super::trust::{standing_on, Standing};
use super::{lock_user, Pool, StoreResult};

/// A registered application with its OpenID Connect columns.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ClientRow {
    pub client_id: String,
    pub name: String,
    pub secret_hash: Option<String>,
    pub builtin: i64,
    /// Exact redirect URIs, one per line; `None` for an API-only application.
    pub redirect_uris: Option<String>,
    pub public_client: i64,
    pub ciba_notification_endpoint: Option<String>,
    pub created_at: i64,
    /// How long a refresh token family lives from its sign-in, in seconds (0: none issued).
    pub refresh_lifetime_secs: i64,
    /// How long a refresh token may go unused, in seconds (`None`: no idle limit).
    pub refresh_idle_secs: Option<i64>,
    /// Exact post-logout redirect URIs, one per line.
    pub post_logout_redirect_uris: Option<String>,
    /// Where the server POSTs logout tokens (Back-Channel Logout).
    pub backchannel_logout_uri: Option<String>,
    /// The JWS algorithm of its ID and logout tokens (`RS256` or `ES256`).
    pub id_token_alg: String,
}

const CLIENT_COLUMNS: &str = "client_id, name, secret_hash, builtin, redirect_uris, \
     public_client, ciba_notification_endpoint, created_at, refresh_lifetime_secs, \
     refresh_idle_secs, post_logout_redirect_uris, backchannel_logout_uri, id_token_alg";

/// Inserts a client; `false` (nothing written) when the name is taken.
pub async fn insert_client(pool: &Pool, row: &ClientRow) -> StoreResult<bool> {
    let done = sqlx::query(&format!(
        "INSERT INTO applications ({CLIENT_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING"
    ))
    .bind(&row.client_id)
    .bind(&row.name)
    .bind(row.secret_hash.as_deref())
    .bind(row.builtin)
    .bind(row.redirect_uris.as_deref())
    .bind(row.public_client)
    .bind(row.ciba_notification_endpoint.as_deref())
    .bind(row.created_at)
    .bind(row.refresh_lifetime_secs)
    .bind(row.refresh_idle_secs)
    .bind(row.post_logout_redirect_uris.as_deref())
    .bind(row.backchannel_logout_uri.as_deref())
    .bind(&row.id_token_alg)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn find_client(pool: &Pool, client_id: &str) -> StoreResult<Option<ClientRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {CLIENT_COLUMNS} FROM applications WHERE client_id = $1"
    ))
    .bind(client_id)
    .fetch_optional(pool)
    .await?)
}

/// Every application with its OpenID Connect columns, by name.
pub async fn all_clients(pool: &Pool) -> StoreResult<Vec<ClientRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {CLIENT_COLUMNS} FROM applications ORDER BY name"
    ))
    .fetch_all(pool)
    .await?)
}

// ---- signing keys ----

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SigningKeyRow {
    pub kid: String,
    /// The JWS algorithm it signs with: `ES256` (a P-256 key) or `RS256` (an RSA key).
    pub alg: String,
    pub pkcs8: String,
    pub created_at: i64,
}

/// Every signing key, newest first (the newest of each algorithm signs).
pub async fn signing_keys(pool: &Pool) -> StoreResult<Vec<SigningKeyRow>> {
    Ok(sqlx::query_as(
        "SELECT kid, alg, pkcs8, created_at FROM oidc_signing_keys \
         ORDER BY created_at DESC, kid",
    )
    .fetch_all(pool)
    .await?)
}

pub async fn insert_signing_key(pool: &Pool, row: &SigningKeyRow) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO oidc_signing_keys (kid, alg, pkcs8, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&row.kid)
    .bind(&row.alg)
    .bind(&row.pkcs8)
    .bind(row.created_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// Removes a key from the JWKS; `false` if there is none.
pub async fn delete_signing_key(pool: &Pool, kid: &str) -> StoreResult<bool> {
    let done = sqlx::query("DELETE FROM oidc_signing_keys WHERE kid = $1")
        .bind(kid)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

// ---- subjects ----

/// The user's `sub`, stored as `fresh` on first use (two racing callers agree).
pub async fn subject_for(pool: &Pool, upn: &str, fresh: &str) -> StoreResult<String> {
    sqlx::query("INSERT INTO oidc_subjects (upn, sub) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(upn)
        .bind(fresh)
        .execute(pool)
        .await?;
    Ok(
        sqlx::query_scalar("SELECT sub FROM oidc_subjects WHERE upn = $1")
            .bind(upn)
            .fetch_one(pool)
            .await?,
    )
}

/// The user whose `sub` this is, if any (an `id_token_hint`'s subject).
pub async fn upn_for_subject(pool: &Pool, sub: &str) -> StoreResult<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT upn FROM oidc_subjects WHERE sub = $1")
            .bind(sub)
            .fetch_optional(pool)
            .await?,
    )
}

// ---- browser authorizations ----

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuthorizationRow {
    pub handle_hash: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub login_hint: Option<String>,
    pub prompt_login: i64,
    pub max_age: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
    /// `form_post`, or `None` for the query.
    pub response_mode: Option<String>,
    /// The weakest `acr` the client accepts.
    pub acr_min: Option<String>,
    /// The user an `id_token_hint` named: only they may complete the authorization.
    pub hint_upn: Option<String>,
}

const AUTHORIZATION_COLUMNS: &str = "handle_hash, client_id, redirect_uri, scope, state, nonce, \
     code_challenge, login_hint, prompt_login, max_age, created_at, expires_at, response_mode, \
     acr_min, hint_upn";

/// Stores an authorization request (and first drops expired ones).
pub async fn insert_authorization(
    pool: &Pool,
    row: &AuthorizationRow,
    now: i64,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM oidc_authorizations WHERE expires_at <= $1")
        .bind(now)
        .execute(pool)
        .await?;
    sqlx::query(&format!(
        "INSERT INTO oidc_authorizations ({AUTHORIZATION_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    ))
    .bind(&row.handle_hash)
    .bind(&row.client_id)
    .bind(&row.redirect_uri)
    .bind(&row.scope)
    .bind(row.state.as_deref())
    .bind(row.nonce.as_deref())
    .bind(row.code_challenge.as_deref())
    .bind(row.login_hint.as_deref())
    .bind(row.prompt_login)
    .bind(row.max_age)
    .bind(row.created_at)
    .bind(row.expires_at)
    .bind(row.response_mode.as_deref())
    .bind(row.acr_min.as_deref())
    .bind(row.hint_upn.as_deref())
    .execute(pool)
    .await?;
    Ok(())
}

/// The unexpired authorization request with this handle hash.
pub async fn find_authorization(
    pool: &Pool,
    handle_hash: &str,
    now: i64,
) -> StoreResult<Option<AuthorizationRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {AUTHORIZATION_COLUMNS} FROM oidc_authorizations \
         WHERE handle_hash = $1 AND expires_at > $2"
    ))
    .bind(handle_hash)
    .bind(now)
    .fetch_optional(pool)
    .await?)
}

/// Ends an authorization request; `true` for the one caller that removed it.
pub async fn delete_authorization(pool: &Pool, handle_hash: &str) -> StoreResult<bool> {
    let done = sqlx::query("DELETE FROM oidc_authorizations WHERE handle_hash = $1")
        .bind(handle_hash)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

// ---- how web sessions signed in ----

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionAuthRow {
    pub session_hash: String,
    pub upn: String,
    pub auth_time: i64,
    /// `amr` values, space-separated.
    pub amr: String,
    pub expires_at: i64,
    /// How the session signed in (`trust::Method`) and the device that proved it.
    pub method: Option<String>,
    pub device: Option<String>,
    /// The session's OpenID Connect session id (`sid` of its ID and logout tokens).
    pub sid: Option<String>,
}

pub async fn insert_session_auth(pool: &Pool, row: &SessionAuthRow, now: i64) -> StoreResult<()> {
    sqlx::query("DELETE FROM oidc_session_auth WHERE expires_at <= $1")
        .bind(now)
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO oidc_session_auth (session_hash, upn, auth_time, amr, expires_at, method, \
         device, sid) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&row.session_hash)
    .bind(&row.upn)
    .bind(row.auth_time)
    .bind(&row.amr)
    .bind(row.expires_at)
    .bind(&row.method)
    .bind(&row.device)
    .bind(&row.sid)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn find_session_auth(
    pool: &Pool,
    session_hash: &str,
    now: i64,
) -> StoreResult<Option<SessionAuthRow>> {
    Ok(sqlx::query_as(
        "SELECT session_hash, upn, auth_time, amr, expires_at, method, device, sid \
         FROM oidc_session_auth \
         WHERE session_hash = $1 AND expires_at > $2",
    )
    .bind(session_hash)
    .bind(now)
    .fetch_optional(pool)
    .await?)
}

// ---- authorization codes ----

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CodeRow {
    pub code_hash: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub upn: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: i64,
    pub amr: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    /// How the browser signed in (`trust::Method`) and the device that proved it.
    pub method: Option<String>,
    pub device: Option<String>,
    /// The session it was issued in (`oidc_session_auth.sid`).
    pub sid: Option<String>,
}

const CODE_COLUMNS: &str = "code_hash, client_id, redirect_uri, upn, scope, nonce, \
     code_challenge, auth_time, amr, created_at, expires_at, used_at, method, device, sid";

/// Stores a code (and first drops codes expired for a day: a reuse within that day is still
/// recognized as one).
pub async fn insert_code(pool: &Pool, row: &CodeRow, now: i64) -> StoreResult<()> {
    sqlx::query("DELETE FROM oidc_codes WHERE expires_at <= $1")
        .bind(now - 24 * 3600 * 1000)
        .execute(pool)
        .await?;
    sqlx::query(&format!(
        "INSERT INTO oidc_codes ({CODE_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    ))
    .bind(&row.code_hash)
    .bind(&row.client_id)
    .bind(&row.redirect_uri)
    .bind(&row.upn)
    .bind(&row.scope)
    .bind(row.nonce.as_deref())
    .bind(row.code_challenge.as_deref())
    .bind(row.auth_time)
    .bind(&row.amr)
    .bind(row.created_at)
    .bind(row.expires_at)
    .bind(row.used_at)
    .bind(&row.method)
    .bind(&row.device)
    .bind(&row.sid)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn find_code(pool: &Pool, code_hash: &str) -> StoreResult<Option<CodeRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {CODE_COLUMNS} FROM oidc_codes WHERE code_hash = $1"
    ))
    .bind(code_hash)
    .fetch_optional(pool)
    .await?)
}

/// Marks an unused, unexpired code used; `true` for the one caller that did.
pub async fn consume_code(pool: &Pool, code_hash: &str, now: i64) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE oidc_codes SET used_at = $2 \
         WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2",
    )
    .bind(code_hash)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records that session `sid` issued a code to `client_id` (kept until the session would
/// expire): the clients told when the session ends.
pub async fn record_session_client(
    pool: &Pool,
    sid: &str,
    client_id: &str,
    now: i64,
    expires_at: i64,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM oidc_session_clients WHERE expires_at <= $1")
        .bind(now)
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO oidc_session_clients (sid, client_id, expires_at) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(sid)
    .bind(client_id)
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

// ---- access tokens ----

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AccessTokenRow {
    pub token_hash: String,
    pub grant_hash: String,
    pub client_id: String,
    pub upn: String,
    pub scope: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// The device that proved the sign-in the token comes from: removing it revokes the token.
    pub device: Option<String>,
}

/// The unexpired access token with this hash.
pub async fn find_access_token(
    pool: &Pool,
    token_hash: &str,
    now: i64,
) -> StoreResult<Option<AccessTokenRow>> {
    Ok(sqlx::query_as(
        "SELECT token_hash, grant_hash, client_id, upn, scope, created_at, expires_at, device \
         FROM oidc_access_tokens WHERE token_hash = $1 AND expires_at > $2",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(pool)
    .await?)
}

/// How many tokens a revocation ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Revoked {
    pub access_tokens: u64,
    /// Spent ones included.
    pub refresh_tokens: u64,
}

/// Revokes, in one transaction, every access and refresh token issued from one grant (a code
/// or `auth_req_id` hash, which is also the family of the refresh tokens issued from it): a
/// code presented twice, a spent refresh token presented again, a refresh token revoked.
pub async fn revoke_grant(pool: &Pool, grant_hash: &str) -> StoreResult<Revoked> {
    let mut tx = pool.begin().await?;
    let access_tokens = sqlx::query("DELETE FROM oidc_access_tokens WHERE grant_hash = $1")
        .bind(grant_hash)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let refresh_tokens = sqlx::query("DELETE FROM oidc_refresh_tokens WHERE family = $1")
        .bind(grant_hash)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(Revoked {
        access_tokens,
        refresh_tokens,
    })
}

/// Revokes one access token of `client_id` (RFC 7009); the user it was for, if there was one.
pub async fn revoke_access_token(
    pool: &Pool,
    token_hash: &str,
    client_id: &str,
) -> StoreResult<Option<String>> {
    Ok(sqlx::query_scalar(
        "DELETE FROM oidc_access_tokens WHERE token_hash = $1 AND client_id = $2 RETURNING upn",
    )
    .bind(token_hash)
    .bind(client_id)
    .fetch_optional(pool)
    .await?)
}

// ---- refresh tokens ----

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RefreshTokenRow {
    pub token_hash: String,
    /// The grant the family comes from (code or auth_req_id hash; the access tokens'
    /// `grant_hash`).
    pub family: String,
    pub client_id: String,
    pub upn: String,
    pub scope: String,
    pub auth_time: i64,
    /// `amr` values, space-separated.
    pub amr: String,
    /// How the user signed in (`trust::Method`) and the device that proved it.
    pub method: String,
    pub device: Option<String>,
    pub created_at: i64,
    /// The family's absolute end.
    pub expires_at: i64,
    /// This token's idle end, if the client has an idle limit.
    pub idle_expires_at: Option<i64>,
    /// When it was rotated; a spent token presented again revokes its family.
    pub used_at: Option<i64>,
}

const REFRESH_COLUMNS: &str = "token_hash, family, client_id, upn, scope, auth_time, amr, \
     method, device, created_at, expires_at, idle_expires_at, used_at";

pub async fn find_refresh_token(
    pool: &Pool,
    token_hash: &str,
) -> StoreResult<Option<RefreshTokenRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {REFRESH_COLUMNS} FROM oidc_refresh_tokens WHERE token_hash = $1"
    ))
    .bind(token_hash)
    .fetch_optional(pool)
    .await?)
}

/// Tokens to store at once ([`store_tokens`]).
#[derive(Debug, Clone, Copy)]
pub struct NewTokens<'a> {
    pub access: &'a AccessTokenRow,
    pub refresh: Option<&'a RefreshTokenRow>,
    /// The refresh token this rotation spends: nothing is stored unless it is unspent and
    /// unexpired at `now`, and it is spent with the store.
    pub spends: Option<&'a str>,
    pub now: i64,
}

/// What [`store_tokens`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Stored,
    /// The refresh token to spend was spent meanwhile (a concurrent refresh): nothing stored.
    AlreadySpent,
    /// The refresh token to spend expired or was deleted (revoked, its credential ended)
    /// meanwhile: nothing stored.
    Gone,
    /// The user's or the device's standing, read again under the user's lock, does not allow
    /// it: nothing stored.
    Refused,
}

/// Stores an access token (and a refresh token, spending the one it replaces) in one
/// transaction under the user's lock, after `may_act` agreed again with the standing of the
/// user and the device read inside it. Ending sessions takes the same lock
/// (`store::trust::end_sessions_on`), so a token is never written for a credential that was
/// removed, or a user who was paused or disabled, after it was checked: either it is written
/// first and ended with the rest, or it finds the end here.
pub async fn store_tokens(
    pool: &Pool,
    t: NewTokens<'_>,
    may_act: impl FnOnce(Option<&Standing>) -> bool,
) -> StoreResult<Stored> {
    let a = t.access;
    // Expired rows go first, outside the transaction (a table-wide delete under one user's
    // lock would make concurrent issues wait on each other). Refresh token families that
    // ended: their spent tokens no longer need recognizing.
    sqlx::query("DELETE FROM oidc_access_tokens WHERE expires_at <= $1")
        .bind(t.now)
        .execute(pool)
        .await?;
    if t.refresh.is_some() {
        sqlx::query("DELETE FROM oidc_refresh_tokens WHERE expires_at <= $1")
            .bind(t.now)
            .execute(pool)
            .await?;
    }
    let mut tx = pool.begin().await?;
    lock_user(&mut tx, &a.upn).await?;
    if let Some(spent) = t.spends {
        let done = sqlx::query(
            "UPDATE oidc_refresh_tokens SET used_at = $2 \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 \
             AND (idle_expires_at IS NULL OR idle_expires_at > $2)",
        )
        .bind(spent)
        .bind(t.now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            let used_at: Option<Option<i64>> =
                sqlx::query_scalar("SELECT used_at FROM oidc_refresh_tokens WHERE token_hash = $1")
                    .bind(spent)
                    .fetch_optional(&mut *tx)
                    .await?;
            return Ok(match used_at {
                Some(Some(_)) => Stored::AlreadySpent,
                _ => Stored::Gone,
            });
        }
    }
    let standing = standing_on(&mut tx, &a.upn, a.device.as_deref()).await?;
    if !may_act(standing.as_ref()) {
        return Ok(Stored::Refused);
    }
    sqlx::query(
        "INSERT INTO oidc_access_tokens (token_hash, grant_hash, client_id, upn, scope, \
         created_at, expires_at, device) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&a.token_hash)
    .bind(&a.grant_hash)
    .bind(&a.client_id)
    .bind(&a.upn)
    .bind(&a.scope)
    .bind(a.created_at)
    .bind(a.expires_at)
    .bind(&a.device)
    .execute(&mut *tx)
    .await?;
    if let Some(r) = t.refresh {
        sqlx::query(&format!(
            "INSERT INTO oidc_refresh_tokens ({REFRESH_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
        .bind(&r.token_hash)
        .bind(&r.family)
        .bind(&r.client_id)
        .bind(&r.upn)
        .bind(&r.scope)
        .bind(r.auth_time)
        .bind(&r.amr)
        .bind(&r.method)
        .bind(&r.device)
        .bind(r.created_at)
        .bind(r.expires_at)
        .bind(r.idle_expires_at)
        .bind(r.used_at)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Stored::Stored)
}

// ---- CIBA ----

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CibaRow {
    pub req_hash: String,
    pub client_id: String,
    pub upn: String,
    pub scope: String,
    pub signin_id: String,
    pub notification_token: Option<String>,
    pub interval_secs: i64,
    pub last_poll_at: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
    pub redeemed_at: Option<i64>,
}

const CIBA_COLUMNS: &str = "req_hash, client_id, upn, scope, signin_id, notification_token, \
     interval_secs, last_poll_at, created_at, expires_at, redeemed_at";

/// Stores a CIBA request (and first drops those expired for a day).
pub async fn insert_ciba(pool: &Pool, row: &CibaRow) -> StoreResult<()> {
    sqlx::query("DELETE FROM ciba_requests WHERE expires_at <= $1")
        .bind(row.created_at - 24 * 3600 * 1000)
        .execute(pool)
        .await?;
    sqlx::query(&format!(
        "INSERT INTO ciba_requests ({CIBA_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(&row.req_hash)
    .bind(&row.client_id)
    .bind(&row.upn)
    .bind(&row.scope)
    .bind(&row.signin_id)
    .bind(row.notification_token.as_deref())
    .bind(row.interval_secs)
    .bind(row.last_poll_at)
    .bind(row.created_at)
    .bind(row.expires_at)
    .bind(row.redeemed_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn find_ciba(pool: &Pool, req_hash: &str) -> StoreResult<Option<CibaRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {CIBA_COLUMNS} FROM ciba_requests WHERE req_hash = $1"
    ))
    .bind(req_hash)
    .fetch_optional(pool)
    .await?)
}

/// Records a poll at `now` if the previous one (as the caller read it, `previous`) is still
/// the last; `false` when another poll came in between (that one counts).
pub async fn record_ciba_poll(
    pool: &Pool,
    req_hash: &str,
    previous: Option<i64>,
    now: i64,
    interval_secs: i64,
) -> StoreResult<bool> {
    let done = match previous {
        Some(p) => {
            sqlx::query(
                "UPDATE ciba_requests SET last_poll_at = $2, interval_secs = $4 \
                 WHERE req_hash = $1 AND last_poll_at = $3",
            )
            .bind(req_hash)
            .bind(now)
            .bind(p)
            .bind(interval_secs)
            .execute(pool)
            .await?
        }
        None => {
            sqlx::query(
                "UPDATE ciba_requests SET last_poll_at = $2, interval_secs = $3 \
                 WHERE req_hash = $1 AND last_poll_at IS NULL",
            )
            .bind(req_hash)
            .bind(now)
            .bind(interval_secs)
            .execute(pool)
            .await?
        }
    };
    Ok(done.rows_affected() == 1)
}

/// Marks a CIBA request redeemed; `true` for the one caller that did.
pub async fn redeem_ciba(pool: &Pool, req_hash: &str, now: i64) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE ciba_requests SET redeemed_at = $2 WHERE req_hash = $1 AND redeemed_at IS NULL",
    )
    .bind(req_hash)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}
