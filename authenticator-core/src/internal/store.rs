//! SQLite storage (WAL). Every change that must not be half-done is one transaction.
//! Calls are short and synchronous; the connection mutex is never held across an `.await`.
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use authenticator_protocol::push::PushChannelKind;
use authenticator_protocol::sign_in::{RequestDetails, SignedRequestDetails};
use authenticator_protocol::{AccountId, PublicKey, RequestId, UnixMillis};
use rusqlite::{params, Connection, OptionalExtension};
use url::Url;

use crate::error::{Error, Result};
use crate::types::AccountSummary;

const SCHEMA_VERSION: i64 = 7;

const MIGRATION_1: &str = "
CREATE TABLE accounts (
    account_id             TEXT PRIMARY KEY NOT NULL,
    server_url             TEXT NOT NULL,
    server_public_key      BLOB NOT NULL,
    upn                    TEXT NOT NULL,
    display_name           TEXT NOT NULL,
    server_name            TEXT NOT NULL,
    device_key_alias       TEXT NOT NULL UNIQUE,
    passwordless_key_alias TEXT UNIQUE,
    push_kind              TEXT NOT NULL,
    enrolled_at_ms         INTEGER NOT NULL
);
CREATE TABLE requests (
    request_id    TEXT PRIMARY KEY NOT NULL,
    account_id    TEXT NOT NULL REFERENCES accounts(account_id) ON DELETE CASCADE,
    details       TEXT NOT NULL,
    signature     TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    state         TEXT NOT NULL DEFAULT 'pending',
    fetched_at_ms INTEGER NOT NULL
);
CREATE INDEX requests_by_state ON requests(state, expires_at_ms);
";

/// The server refuses a response whose timestamp is not newer than the previous one for the
/// same request (replay protection), so the phone remembers the last one it signed.
const MIGRATION_2: &str = "
ALTER TABLE requests ADD COLUMN last_response_ms INTEGER NOT NULL DEFAULT 0;
";

/// A request is identified by (account, request) everywhere: a request id is chosen by the
/// server of one account, and another server the phone is enrolled with may name the same id.
/// Keyed by the id alone, that server could hide the real request (an insert that silently
/// did nothing), show its own text for it, or have the other account's key sign it.
const MIGRATION_3: &str = "
CREATE TABLE requests_v3 (
    account_id       TEXT NOT NULL REFERENCES accounts(account_id) ON DELETE CASCADE,
    request_id       TEXT NOT NULL,
    details          TEXT NOT NULL,
    signature        TEXT NOT NULL,
    expires_at_ms    INTEGER NOT NULL,
    created_at_ms    INTEGER NOT NULL,
    state            TEXT NOT NULL DEFAULT 'pending',
    fetched_at_ms    INTEGER NOT NULL,
    last_response_ms INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, request_id)
);
INSERT INTO requests_v3 (account_id, request_id, details, signature, expires_at_ms,
    created_at_ms, state, fetched_at_ms, last_response_ms)
SELECT account_id, request_id, details, signature, expires_at_ms, created_at_ms, state,
    fetched_at_ms, last_response_ms FROM requests;
DROP TABLE requests;
ALTER TABLE requests_v3 RENAME TO requests;
CREATE INDEX requests_by_state ON requests(state, expires_at_ms);
";

/// Key journal (crash safety): the aliases of keys that may exist in the key store and must
/// be deleted unless an account references them. A key is journaled before it is created and
/// leaves the journal in the transaction that attaches it to an account; an account's keys are
/// journaled in the transaction that removes it, a replaced phone-sign-in key in the one that
/// replaces it. Whatever a crash interrupts, the next instance deletes the journaled keys
/// (`Core::finish_interrupted_key_work`): no key outlives its account, no account loses its key.
/// `owner` is the instance that wrote the row: an instance never sweeps its own rows, which
/// belong to operations still in flight.
const MIGRATION_4: &str = "
CREATE TABLE key_journal (
    alias           TEXT PRIMARY KEY NOT NULL,
    owner           TEXT NOT NULL,
    journaled_at_ms INTEGER NOT NULL
);
";

/// TOTP accounts (the offline fallback, issue 11): the secret each enrollment brings (linked
/// to its account, removed with it) and `otpauth://` imports (no account). `sealed_secret` is
/// what the platform's `SecretStore` returned for the secret: never the secret itself.
const MIGRATION_5: &str = "
CREATE TABLE totp_accounts (
    totp_id       TEXT PRIMARY KEY NOT NULL,
    account_id    TEXT REFERENCES accounts(account_id) ON DELETE CASCADE,
    issuer        TEXT NOT NULL,
    account_name  TEXT NOT NULL,
    algorithm     TEXT NOT NULL,
    digits        INTEGER NOT NULL,
    period        INTEGER NOT NULL,
    sealed_secret BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL
);
";

/// Accounts removed from the phone whose server has not yet been told (PROTOCOL.md §5.7):
/// `DELETE /api/v1/device`, signed with the device key, which this row keeps (the key journal
/// does not delete a key a row names) until the server answers or `queued_at_ms` is 30 days
/// old. Retried before each poll and each enrollment or removal.
const MIGRATION_6: &str = "
CREATE TABLE unregistrations (
    account_id       TEXT PRIMARY KEY NOT NULL,
    server_url       TEXT NOT NULL,
    device_key_alias TEXT NOT NULL,
    queued_at_ms     INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0
);
";

/// Sign-in pages the browser listener saw (PROTOCOL.md §5.9): the page's challenge and the
/// origin its browser sent. In the store, not in memory, so that a listener in one process
/// (the desktop phone's `browser-listener`) serves an approval in another. Pruned after
/// `SIGHTING_TTL_MS`, at most `MAX_SIGHTINGS` rows.
const MIGRATION_7: &str = "
CREATE TABLE browser_sightings (
    challenge  TEXT NOT NULL,
    origin     TEXT NOT NULL,
    seen_at_ms INTEGER NOT NULL,
    PRIMARY KEY (challenge, origin)
);
";

/// How long a sighting is kept: longer than any sign-in request lives.
pub(crate) const SIGHTING_TTL_MS: u64 = 15 * 60 * 1000;
/// The most sightings kept (the oldest go first): a page that floods the listener only
/// pushes out sightings, it never grows the store.
pub(crate) const MAX_SIGHTINGS: i64 = 512;

/// A removed account's pending notice to its server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unregistration {
    pub account_id: AccountId,
    pub server_url: Url,
    pub device_key_alias: String,
    pub queued_at: UnixMillis,
}

/// What removing an account left to do: delete the phone-sign-in key now, tell the server
/// (which keeps the device key until then).
#[derive(Debug)]
pub(crate) struct RemovedAccount {
    pub passwordless_key_alias: Option<String>,
    pub unregistration: Unregistration,
}

/// State of a stored request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestState {
    Pending,
    Approved,
    Denied,
    Reported,
    /// Expired, failed, superseded or answered from elsewhere, as the server told us.
    Closed,
}

impl RequestState {
    fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::Approved => "approved",
            RequestState::Denied => "denied",
            RequestState::Reported => "reported",
            RequestState::Closed => "closed",
        }
    }
    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "pending" => RequestState::Pending,
            "approved" => RequestState::Approved,
            "denied" => RequestState::Denied,
            "reported" => RequestState::Reported,
            "closed" => RequestState::Closed,
            _ => return Err(Error::Internal("unknown stored request state".into())),
        })
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub account_id: AccountId,
    pub server_url: Url,
    pub server_public_key: PublicKey,
    pub upn: String,
    pub display_name: String,
    pub server_name: String,
    pub device_key_alias: String,
    pub passwordless_key_alias: Option<String>,
    pub push_kind: PushChannelKind,
    pub enrolled_at: UnixMillis,
}

impl Account {
    pub fn summary(&self) -> AccountSummary {
        AccountSummary {
            account_id: self.account_id.to_string(),
            upn: self.upn.clone(),
            display_name: self.display_name.clone(),
            server_name: self.server_name.clone(),
            server_url: self.server_url.to_string(),
            phone_sign_in_enabled: self.passwordless_key_alias.is_some(),
            enrolled_at_ms: self.enrolled_at.millis(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct StoredRequest {
    pub account_id: AccountId,
    /// The exact details text and signature received (re-verified on every load).
    pub signed: SignedRequestDetails,
    pub state: RequestState,
}

pub(crate) struct Store {
    conn: Mutex<Connection>,
    /// This instance's random tag for its key-journal rows.
    owner: String,
}

impl Store {
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let conn = Connection::open(dir.join("authenticator.sqlite3"))?;
        Self::init(conn)
    }

    #[cfg(test)]
    pub fn in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Self> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // WAL survives crashes mid-write and lets a push extension read while the app writes.
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(Error::Internal(
                "the database was written by a newer version of the app".into(),
            ));
        }
        for (to, migration) in [
            (1, MIGRATION_1),
            (2, MIGRATION_2),
            (3, MIGRATION_3),
            (4, MIGRATION_4),
            (5, MIGRATION_5),
            (6, MIGRATION_6),
            (7, MIGRATION_7),
        ] {
            if version < to {
                let tx = conn.transaction()?;
                tx.execute_batch(migration)?;
                tx.pragma_update(None, "user_version", to)?;
                tx.commit()?;
            }
        }
        Ok(Store {
            conn: Mutex::new(conn),
            owner: super::new_alias("owner")?,
        })
    }

    fn conn(&self) -> Result<MutexGuard<'_, Connection>> {
        self.conn
            .lock()
            .map_err(|_| Error::Internal("storage lock poisoned".into()))
    }

    /// Inserts a new account in one transaction; an existing `account_id` is `AlreadyEnrolled`.
    pub fn insert_account(&self, a: &Account) -> Result<()> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let exists: bool = tx
            .query_row(
                "SELECT 1 FROM accounts WHERE account_id = ?1",
                [a.account_id.as_str()],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if exists {
            return Err(Error::AlreadyEnrolled);
        }
        tx.execute(
            "INSERT INTO accounts (account_id, server_url, server_public_key, upn, display_name,
                 server_name, device_key_alias, passwordless_key_alias, push_kind, enrolled_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                a.account_id.as_str(),
                a.server_url.as_str(),
                &a.server_public_key.as_bytes()[..],
                a.upn,
                a.display_name,
                a.server_name,
                a.device_key_alias,
                a.passwordless_key_alias,
                a.push_kind.as_str(),
                a.enrolled_at.millis() as i64,
            ],
        )?;
        // The account now owns its keys: they leave the journal in the same transaction.
        for alias in [Some(&a.device_key_alias), a.passwordless_key_alias.as_ref()]
            .into_iter()
            .flatten()
        {
            tx.execute("DELETE FROM key_journal WHERE alias = ?1", [alias])?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn accounts(&self) -> Result<Vec<Account>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&format!(
            "{ACCOUNT_SELECT} ORDER BY enrolled_at_ms, account_id"
        ))?;
        let rows = stmt.query_map([], read_account_row)?;
        rows.map(|r| r.map_err(Error::from).and_then(|raw| raw.into_account()))
            .collect()
    }

    pub fn account(&self, id: &AccountId) -> Result<Option<Account>> {
        let conn = self.conn()?;
        let raw = conn
            .query_row(
                &format!("{ACCOUNT_SELECT} WHERE account_id = ?1"),
                [id.as_str()],
                read_account_row,
            )
            .optional()?;
        raw.map(RawAccount::into_account).transpose()
    }

    /// The account's push channel kind after a rotation (PROTOCOL.md §5.10).
    pub fn set_push_kind(&self, id: &AccountId, kind: PushChannelKind) -> Result<()> {
        let changed = self.conn()?.execute(
            "UPDATE accounts SET push_kind = ?2 WHERE account_id = ?1",
            params![id.as_str(), kind.as_str()],
        )?;
        if changed == 0 {
            return Err(Error::NotEnrolled);
        }
        Ok(())
    }

    /// Sets the passwordless alias; returns the previous one, journaled in the same transaction
    /// (the caller deletes its key, then `forget_key`).
    pub fn set_passwordless_alias(&self, id: &AccountId, alias: &str) -> Result<Option<String>> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let previous: Option<Option<String>> = tx
            .query_row(
                "SELECT passwordless_key_alias FROM accounts WHERE account_id = ?1",
                [id.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        let Some(previous) = previous else {
            return Err(Error::NotEnrolled);
        };
        tx.execute(
            "UPDATE accounts SET passwordless_key_alias = ?2 WHERE account_id = ?1",
            params![id.as_str(), alias],
        )?;
        tx.execute("DELETE FROM key_journal WHERE alias = ?1", [alias])?;
        if let Some(previous) = previous.as_deref().filter(|p| *p != alias) {
            self.journal_in(&tx, previous)?;
        }
        tx.commit()?;
        Ok(previous)
    }

    /// Deletes the account and (by cascade) its requests, journaling its keys and queueing
    /// the notice to its server, all in one transaction. The caller deletes the phone-sign-in
    /// key now and the device key once the server is told (`unregistration_done`).
    pub fn delete_account(&self, id: &AccountId) -> Result<RemovedAccount> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let row: Option<(String, Option<String>, String)> = tx
            .query_row(
                "SELECT device_key_alias, passwordless_key_alias, server_url FROM accounts
                 WHERE account_id = ?1",
                [id.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((device, passwordless, server_url)) = row else {
            return Err(Error::NotEnrolled);
        };
        let server_url = Url::parse(&server_url)
            .map_err(|_| Error::Internal("stored account has an invalid server URL".into()))?;
        tx.execute("DELETE FROM accounts WHERE account_id = ?1", [id.as_str()])?;
        for alias in passwordless.iter().chain([&device]) {
            self.journal_in(&tx, alias)?;
        }
        let queued_at = UnixMillis::now();
        tx.execute(
            "INSERT INTO unregistrations (account_id, server_url, device_key_alias, queued_at_ms)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(account_id) DO UPDATE SET device_key_alias = excluded.device_key_alias",
            params![
                id.as_str(),
                server_url.as_str(),
                device,
                clamp(queued_at.millis())
            ],
        )?;
        tx.commit()?;
        Ok(RemovedAccount {
            passwordless_key_alias: passwordless,
            unregistration: Unregistration {
                account_id: id.clone(),
                server_url,
                device_key_alias: device,
                queued_at,
            },
        })
    }

    /// Removed accounts whose server has not been told yet, oldest first.
    pub fn unregistrations(&self) -> Result<Vec<Unregistration>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT account_id, server_url, device_key_alias, queued_at_ms FROM unregistrations
             ORDER BY queued_at_ms, account_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        rows.map(|row| {
            let (id, url, alias, at) = row?;
            let corrupt = || Error::Internal("stored unregistration is invalid".into());
            Ok(Unregistration {
                account_id: AccountId::parse(&id).map_err(|_| corrupt())?,
                server_url: Url::parse(&url).map_err(|_| corrupt())?,
                device_key_alias: alias,
                queued_at: UnixMillis(u64::try_from(at).unwrap_or(0)),
            })
        })
        .collect()
    }

    /// The server was told (or will never be): the row goes; its device key is then the
    /// journal's to delete.
    pub fn unregistration_done(&self, id: &AccountId) -> Result<()> {
        let conn = self.conn()?;
        conn.execute(
            "DELETE FROM unregistrations WHERE account_id = ?1",
            [id.as_str()],
        )?;
        Ok(())
    }

    /// One more attempt that could not reach the server.
    pub fn unregistration_failed(&self, id: &AccountId) -> Result<()> {
        let conn = self.conn()?;
        conn.execute(
            "UPDATE unregistrations SET attempts = attempts + 1 WHERE account_id = ?1",
            [id.as_str()],
        )?;
        Ok(())
    }

    /// Journals a key about to be created (before the key store is asked for it).
    pub fn journal_key(&self, alias: &str) -> Result<()> {
        let conn = self.conn()?;
        self.journal_in(&conn, alias)
    }

    fn journal_in(&self, conn: &Connection, alias: &str) -> Result<()> {
        conn.execute(
            "INSERT INTO key_journal (alias, owner, journaled_at_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT(alias) DO UPDATE SET owner = excluded.owner",
            params![alias, self.owner, clamp(UnixMillis::now().millis())],
        )?;
        Ok(())
    }

    /// Takes a key out of the journal once it is deleted.
    pub fn forget_key(&self, alias: &str) -> Result<()> {
        let conn = self.conn()?;
        conn.execute("DELETE FROM key_journal WHERE alias = ?1", [alias])?;
        Ok(())
    }

    /// Keys whose operation an earlier instance did not finish (it crashed, or a key store
    /// call failed): journaled by another instance and referenced by no account. Rows that an
    /// account does reference (an operation that finished without clearing them: cannot
    /// happen, as both writes share a transaction) are dropped, never returned.
    pub fn interrupted_keys(&self) -> Result<Vec<String>> {
        let conn = self.conn()?;
        conn.execute(
            "DELETE FROM key_journal WHERE alias IN (
                 SELECT device_key_alias FROM accounts
                 UNION SELECT passwordless_key_alias FROM accounts
                     WHERE passwordless_key_alias IS NOT NULL)",
            [],
        )?;
        // A key an unregistration still needs (to sign its notice) waits for it.
        let mut stmt = conn.prepare(
            "SELECT alias FROM key_journal WHERE owner <> ?1
                 AND alias NOT IN (SELECT device_key_alias FROM unregistrations)
             ORDER BY alias",
        )?;
        let rows = stmt.query_map([&self.owner], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Stores verified details under their (account, request). `true` when the stored request
    /// is now pending with exactly these details; `false` when it was already answered (it
    /// keeps its state, and its details must not be shown again).
    pub fn upsert_request(
        &self,
        signed: &SignedRequestDetails,
        details: &RequestDetails,
    ) -> Result<bool> {
        let conn = self.conn()?;
        let written = conn.execute(
            "INSERT INTO requests (account_id, request_id, details, signature, expires_at_ms,
                 created_at_ms, state, fetched_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7)
             ON CONFLICT(account_id, request_id) DO UPDATE SET
                 details = excluded.details, signature = excluded.signature,
                 expires_at_ms = excluded.expires_at_ms, created_at_ms = excluded.created_at_ms,
                 fetched_at_ms = excluded.fetched_at_ms
             WHERE requests.state = 'pending'",
            params![
                details.account_id.as_str(),
                details.request_id.as_str(),
                signed.details,
                signed.signature,
                clamp(details.expires_at.millis()),
                clamp(details.created_at.millis()),
                clamp(UnixMillis::now().millis()),
            ],
        )?;
        Ok(written == 1)
    }

    pub fn request(&self, account: &AccountId, id: &RequestId) -> Result<Option<StoredRequest>> {
        let conn = self.conn()?;
        let raw = conn
            .query_row(
                "SELECT account_id, details, signature, state
                 FROM requests WHERE account_id = ?1 AND request_id = ?2",
                [account.as_str(), id.as_str()],
                read_request_row,
            )
            .optional()?;
        raw.map(RawRequest::into_request).transpose()
    }

    /// Pending requests not expired at `now`, newest first. `expires_at_ms > now` is the SQL
    /// spelling of `!expires_at.is_expired_at(now)` (`UnixMillis::is_expired_at`, the protocol's
    /// one expiry rule), so the index on `(state, expires_at_ms)` serves it; a test pins the two
    /// to the same millisecond.
    pub fn pending_requests(&self, now: UnixMillis) -> Result<Vec<StoredRequest>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT account_id, details, signature, state FROM requests
             WHERE state = 'pending' AND expires_at_ms > ?1
             ORDER BY created_at_ms DESC, account_id, request_id",
        )?;
        let rows = stmt.query_map([clamp(now.millis())], read_request_row)?;
        rows.map(|r| r.map_err(Error::from).and_then(RawRequest::into_request))
            .collect()
    }

    /// A timestamp for the next signed response to (`account`, `id`): `now`, or one
    /// millisecond after the previous response when the clock has not moved on (quick retries
    /// after a wrong number).
    pub fn next_response_timestamp(
        &self,
        account: &AccountId,
        id: &RequestId,
        now: UnixMillis,
    ) -> Result<UnixMillis> {
        let conn = self.conn()?;
        let ts: i64 = conn.query_row(
            "UPDATE requests SET last_response_ms = MAX(?3, last_response_ms + 1) \
             WHERE account_id = ?1 AND request_id = ?2 RETURNING last_response_ms",
            rusqlite::params![account.as_str(), id.as_str(), clamp(now.millis())],
            |r| r.get(0),
        )?;
        Ok(UnixMillis(u64::try_from(ts).unwrap_or(0)))
    }

    /// Moves a pending request to `state`. Returns false when it was no longer pending.
    pub fn finish_request(
        &self,
        account: &AccountId,
        id: &RequestId,
        state: RequestState,
    ) -> Result<bool> {
        let conn = self.conn()?;
        Ok(conn.execute(
            "UPDATE requests SET state = ?3
             WHERE account_id = ?1 AND request_id = ?2 AND state = 'pending'",
            params![account.as_str(), id.as_str(), state.as_str()],
        )? > 0)
    }

    /// Records that a sign-in page with `challenge` was seen at `origin` (§5.9).
    pub fn record_browser_sighting(
        &self,
        challenge: &str,
        origin: &str,
        now: UnixMillis,
    ) -> Result<()> {
        let conn = self.conn()?;
        conn.execute(
            "INSERT INTO browser_sightings (challenge, origin, seen_at_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (challenge, origin) DO UPDATE SET seen_at_ms = excluded.seen_at_ms",
            rusqlite::params![challenge, origin, clamp(now.millis())],
        )?;
        conn.execute(
            "DELETE FROM browser_sightings WHERE seen_at_ms < ?1 OR rowid NOT IN
             (SELECT rowid FROM browser_sightings ORDER BY seen_at_ms DESC LIMIT ?2)",
            rusqlite::params![
                clamp(now.millis().saturating_sub(SIGHTING_TTL_MS)),
                MAX_SIGHTINGS
            ],
        )?;
        Ok(())
    }

    /// Every origin a page with `challenge` was seen at within `SIGHTING_TTL_MS` of `now`.
    pub fn browser_sightings(&self, challenge: &str, now: UnixMillis) -> Result<Vec<String>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT origin FROM browser_sightings WHERE challenge = ?1 AND seen_at_ms >= ?2
             ORDER BY origin",
        )?;
        let origins = stmt
            .query_map(
                rusqlite::params![
                    challenge,
                    clamp(now.millis().saturating_sub(SIGHTING_TTL_MS))
                ],
                |r| r.get(0),
            )?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(origins)
    }

    /// Drops requests that expired more than a day ago (housekeeping).
    pub fn prune(&self, now: UnixMillis) -> Result<()> {
        let conn = self.conn()?;
        conn.execute(
            "DELETE FROM requests WHERE expires_at_ms < ?1",
            [clamp(now.millis().saturating_sub(86_400_000))],
        )?;
        Ok(())
    }
}

fn clamp(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

const ACCOUNT_SELECT: &str = "SELECT account_id, server_url, server_public_key, upn, display_name,
    server_name, device_key_alias, passwordless_key_alias, push_kind, enrolled_at_ms FROM accounts";

struct RawAccount {
    account_id: String,
    server_url: String,
    server_public_key: Vec<u8>,
    upn: String,
    display_name: String,
    server_name: String,
    device_key_alias: String,
    passwordless_key_alias: Option<String>,
    push_kind: String,
    enrolled_at_ms: i64,
}

fn read_account_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawAccount> {
    Ok(RawAccount {
        account_id: r.get(0)?,
        server_url: r.get(1)?,
        server_public_key: r.get(2)?,
        upn: r.get(3)?,
        display_name: r.get(4)?,
        server_name: r.get(5)?,
        device_key_alias: r.get(6)?,
        passwordless_key_alias: r.get(7)?,
        push_kind: r.get(8)?,
        enrolled_at_ms: r.get(9)?,
    })
}

impl RawAccount {
    fn into_account(self) -> Result<Account> {
        let corrupt = |what: &str| Error::Internal(format!("stored account has an invalid {what}"));
        Ok(Account {
            account_id: AccountId::parse(&self.account_id).map_err(|_| corrupt("id"))?,
            server_url: Url::parse(&self.server_url).map_err(|_| corrupt("server URL"))?,
            server_public_key: PublicKey::from_sec1(&self.server_public_key)
                .map_err(|_| corrupt("server key"))?,
            upn: self.upn,
            display_name: self.display_name,
            server_name: self.server_name,
            device_key_alias: self.device_key_alias,
            passwordless_key_alias: self.passwordless_key_alias,
            push_kind: PushChannelKind::parse(&self.push_kind).map_err(|_| corrupt("push kind"))?,
            enrolled_at: UnixMillis(u64::try_from(self.enrolled_at_ms).unwrap_or(0)),
        })
    }
}

struct RawRequest {
    account_id: String,
    details: String,
    signature: String,
    state: String,
}

fn read_request_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRequest> {
    Ok(RawRequest {
        account_id: r.get(0)?,
        details: r.get(1)?,
        signature: r.get(2)?,
        state: r.get(3)?,
    })
}

impl RawRequest {
    fn into_request(self) -> Result<StoredRequest> {
        Ok(StoredRequest {
            account_id: AccountId::parse(&self.account_id)
                .map_err(|_| Error::Internal("stored request has an invalid account id".into()))?,
            signed: SignedRequestDetails {
                details: self.details,
                signature: self.signature,
            },
            state: RequestState::parse(&self.state)?,
        })
    }
}

/// One stored TOTP account (`totp_accounts`).
#[derive(Clone)]
pub(crate) struct StoredTotp {
    pub totp_id: String,
    pub account_id: Option<AccountId>,
    pub issuer: String,
    pub account_name: String,
    pub algorithm: String,
    pub digits: u32,
    pub period: u32,
    pub sealed_secret: Vec<u8>,
    pub created_at: UnixMillis,
}

impl std::fmt::Debug for StoredTotp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredTotp")
            .field("totp_id", &self.totp_id)
            .field("issuer", &self.issuer)
            .field("account_name", &self.account_name)
            .finish_non_exhaustive()
    }
}

const TOTP_SELECT: &str = "SELECT totp_id, account_id, issuer, account_name, algorithm, digits,
    period, sealed_secret, created_at_ms FROM totp_accounts";

fn read_totp_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(StoredTotp, Option<String>)> {
    Ok((
        StoredTotp {
            totp_id: r.get(0)?,
            account_id: None,
            issuer: r.get(2)?,
            account_name: r.get(3)?,
            algorithm: r.get(4)?,
            digits: r.get(5)?,
            period: r.get(6)?,
            sealed_secret: r.get(7)?,
            created_at: UnixMillis(u64::try_from(r.get::<_, i64>(8)?).unwrap_or(0)),
        },
        r.get(1)?,
    ))
}

fn totp_from_row((mut t, account): (StoredTotp, Option<String>)) -> Result<StoredTotp> {
    t.account_id = account
        .map(|a| AccountId::parse(&a))
        .transpose()
        .map_err(|_| Error::Internal("stored TOTP account has an invalid account id".into()))?;
    if !(1..=300).contains(&t.period) {
        return Err(Error::Internal(
            "stored TOTP account has an invalid period".into(),
        ));
    }
    Ok(t)
}

/// TOTP accounts (schema version 5).
impl Store {
    pub fn insert_totp(&self, t: &StoredTotp) -> Result<()> {
        let conn = self.conn()?;
        conn.execute(
            "INSERT INTO totp_accounts (totp_id, account_id, issuer, account_name, algorithm,
                 digits, period, sealed_secret, created_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                t.totp_id,
                t.account_id.as_ref().map(|a| a.as_str()),
                t.issuer,
                t.account_name,
                t.algorithm,
                t.digits,
                t.period,
                t.sealed_secret,
                clamp(t.created_at.millis()),
            ],
        )?;
        Ok(())
    }

    pub fn totp_accounts(&self) -> Result<Vec<StoredTotp>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&format!("{TOTP_SELECT} ORDER BY created_at_ms, totp_id"))?;
        let rows = stmt.query_map([], read_totp_row)?;
        rows.map(|r| r.map_err(Error::from).and_then(totp_from_row))
            .collect()
    }

    pub fn totp(&self, totp_id: &str) -> Result<Option<StoredTotp>> {
        let conn = self.conn()?;
        conn.query_row(
            &format!("{TOTP_SELECT} WHERE totp_id = ?1"),
            [totp_id],
            read_totp_row,
        )
        .optional()?
        .map(totp_from_row)
        .transpose()
    }

    /// Whether there was such an account.
    pub fn delete_totp(&self, totp_id: &str) -> Result<bool> {
        let conn = self.conn()?;
        Ok(conn.execute("DELETE FROM totp_accounts WHERE totp_id = ?1", [totp_id])? == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use authenticator_protocol::EcdsaSigner;

    fn account(alias: &str) -> Account {
        let (server, _) = EcdsaSigner::generate().unwrap();
        Account {
            account_id: AccountId::random(),
            server_url: Url::parse("https://id.example/").unwrap(),
            server_public_key: server.public_key(),
            upn: "bobby@contoso.test".into(),
            display_name: "Bobby".into(),
            server_name: "Contoso".into(),
            device_key_alias: alias.into(),
            passwordless_key_alias: None,
            push_kind: PushChannelKind::LongPoll,
            enrolled_at: UnixMillis(5),
        }
    }

    #[test]
    fn response_timestamps_strictly_increase_even_when_the_clock_does_not() {
        let store = Store::in_memory().unwrap();
        let a = account("a");
        store.insert_account(&a).unwrap();
        let rid = RequestId::random();
        store
            .conn()
            .unwrap()
            .execute(
                "INSERT INTO requests (request_id, account_id, details, signature, expires_at_ms,
                     created_at_ms, fetched_at_ms) VALUES (?1, ?2, '{}', 's', 9, 1, 1)",
                rusqlite::params![rid.as_str(), a.account_id.as_str()],
            )
            .unwrap();
        let t = UnixMillis(1_000);
        let next = |now| {
            store
                .next_response_timestamp(&a.account_id, &rid, now)
                .unwrap()
        };
        assert_eq!(next(t), t);
        assert_eq!(next(t), UnixMillis(1_001));
        // A clock that went backwards still yields a newer timestamp.
        assert_eq!(next(UnixMillis(5)), UnixMillis(1_002));
        assert_eq!(next(UnixMillis(9_000)), UnixMillis(9_000));
    }

    #[test]
    fn accounts_round_trip_and_duplicates_are_refused() {
        let store = Store::in_memory().unwrap();
        let a = account("a");
        store.insert_account(&a).unwrap();
        let back = store.account(&a.account_id).unwrap().unwrap();
        assert_eq!(back.server_public_key, a.server_public_key);
        assert_eq!(back.summary(), a.summary());
        assert!(matches!(
            store.insert_account(&a),
            Err(Error::AlreadyEnrolled)
        ));
        assert_eq!(store.accounts().unwrap().len(), 1);
        assert_eq!(
            store.set_passwordless_alias(&a.account_id, "p").unwrap(),
            None
        );
        assert!(
            store
                .account(&a.account_id)
                .unwrap()
                .unwrap()
                .summary()
                .phone_sign_in_enabled
        );
        let removed = store.delete_account(&a.account_id).unwrap();
        assert_eq!(removed.passwordless_key_alias.as_deref(), Some("p"));
        assert_eq!(removed.unregistration.device_key_alias, "a");
        assert_eq!(removed.unregistration.server_url, a.server_url);
        assert_eq!(
            store.unregistrations().unwrap(),
            vec![removed.unregistration.clone()]
        );
        store.unregistration_done(&a.account_id).unwrap();
        assert!(store.unregistrations().unwrap().is_empty());
        assert!(store.accounts().unwrap().is_empty());
        assert!(matches!(
            store.delete_account(&a.account_id),
            Err(Error::NotEnrolled)
        ));
        assert!(matches!(
            store.set_passwordless_alias(&a.account_id, "q"),
            Err(Error::NotEnrolled)
        ));
    }

    /// What a crash at each step leaves, as the next instance (another owner) sees it.
    #[test]
    fn the_key_journal_hands_unowned_keys_to_the_next_instance_only() {
        let dir = tempfile::tempdir().unwrap();
        let first = Store::open(dir.path()).unwrap();
        // Enrollment: journaled before creation, owned (and out of the journal) once inserted.
        first.journal_key("dev-1").unwrap();
        first.journal_key("dev-2").unwrap();
        // An instance never sweeps its own rows: they are operations in flight.
        assert!(first.interrupted_keys().unwrap().is_empty());
        let mut a = account("dev-1");
        first.insert_account(&a).unwrap();
        // Enabling phone sign-in twice: the replaced key is journaled with the swap.
        first.journal_key("pl-1").unwrap();
        assert_eq!(
            first.set_passwordless_alias(&a.account_id, "pl-1").unwrap(),
            None
        );
        first.journal_key("pl-2").unwrap();
        assert_eq!(
            first.set_passwordless_alias(&a.account_id, "pl-2").unwrap(),
            Some("pl-1".to_owned())
        );
        // "Crash": dev-2 (never attached) and pl-1 (replaced, not yet deleted) are left.
        let second = Store::open(dir.path()).unwrap();
        assert_eq!(second.interrupted_keys().unwrap(), vec!["dev-2", "pl-1"]);
        second.forget_key("dev-2").unwrap();
        second.forget_key("pl-1").unwrap();
        assert!(second.interrupted_keys().unwrap().is_empty());
        // Removal journals both keys in the transaction that removes the account; the device
        // key waits for the server to be told (it signs that notice).
        let removed = second.delete_account(&a.account_id).unwrap();
        assert_eq!(removed.passwordless_key_alias.as_deref(), Some("pl-2"));
        let third = Store::open(dir.path()).unwrap();
        assert_eq!(third.interrupted_keys().unwrap(), vec!["pl-2"]);
        third.unregistration_done(&a.account_id).unwrap();
        assert_eq!(third.interrupted_keys().unwrap(), vec!["dev-1", "pl-2"]);
        // A journal row for a key an account owns is dropped, never handed out for deletion.
        a.account_id = AccountId::random();
        third.journal_key("dev-1").unwrap();
        third.insert_account(&a).unwrap();
        let fourth = Store::open(dir.path()).unwrap();
        assert_eq!(fourth.interrupted_keys().unwrap(), vec!["pl-2"]);
    }

    fn signed_details(
        account: &Account,
        request: &RequestId,
    ) -> (SignedRequestDetails, RequestDetails) {
        use authenticator_protocol::sign_in::RequestKind;
        let (server, _) = EcdsaSigner::generate().unwrap();
        let details = RequestDetails {
            v: 1,
            request_id: request.clone(),
            account_id: account.account_id.clone(),
            kind: RequestKind::Push,
            upn: account.upn.clone(),
            server_name: account.server_name.clone(),
            app_name: None,
            location: None,
            device_name: None,
            number_matching: true,
            number_length: 2,
            nonce: authenticator_protocol::encoding::b64(&[7u8; 32]),
            created_at: UnixMillis(1),
            expires_at: UnixMillis(u64::MAX / 4),
            browser: None,
        };
        (SignedRequestDetails::sign(&details, &server), details)
    }

    #[test]
    fn a_request_stops_being_pending_at_the_millisecond_the_protocol_calls_it_expired() {
        let store = Store::in_memory().unwrap();
        let a = account("a");
        store.insert_account(&a).unwrap();
        let (_, mut details) = signed_details(&a, &RequestId::random());
        let expires_at = UnixMillis(1_700_000_000_000);
        details.expires_at = expires_at;
        let (server, _) = EcdsaSigner::generate().unwrap();
        let signed = SignedRequestDetails::sign(&details, &server);
        assert!(store.upsert_request(&signed, &details).unwrap());
        for now in [
            expires_at.millis() - 1,
            expires_at.millis(),
            expires_at.millis() + 1,
        ] {
            let now = UnixMillis(now);
            let pending = store.pending_requests(now).unwrap().len();
            assert_eq!(
                pending == 0,
                expires_at.is_expired_at(now),
                "at {now:?}: {pending} pending"
            );
        }
        assert_eq!(
            store
                .pending_requests(UnixMillis(expires_at.millis() - 1))
                .unwrap()
                .len(),
            1,
            "one millisecond before its expiry a request is still pending"
        );
    }

    #[test]
    fn one_request_id_under_two_accounts_is_two_requests_and_an_answered_one_stays_answered() {
        let store = Store::in_memory().unwrap();
        let (a, b) = (account("a"), account("b"));
        store.insert_account(&a).unwrap();
        store.insert_account(&b).unwrap();
        let rid = RequestId::random();
        let (sa, da) = signed_details(&a, &rid);
        let (sb, db) = signed_details(&b, &rid);
        assert!(store.upsert_request(&sa, &da).unwrap());
        assert!(
            store.upsert_request(&sb, &db).unwrap(),
            "not a silent no-op"
        );
        assert_eq!(store.pending_requests(UnixMillis(2)).unwrap().len(), 2);
        let of = |acc: &Account| store.request(&acc.account_id, &rid).unwrap().unwrap();
        assert_eq!(of(&a).signed.details, sa.details);
        assert_eq!(of(&b).signed.details, sb.details);
        // Answering one leaves the other pending, and its details are not replaced.
        assert!(store
            .finish_request(&a.account_id, &rid, RequestState::Approved)
            .unwrap());
        assert_eq!(of(&b).state, RequestState::Pending);
        assert!(!store.upsert_request(&sa, &da).unwrap(), "already answered");
        assert_eq!(of(&a).state, RequestState::Approved);
        // Timestamps are kept per (account, request).
        let t = UnixMillis(50);
        assert_eq!(
            store
                .next_response_timestamp(&a.account_id, &rid, t)
                .unwrap(),
            t
        );
        assert_eq!(
            store
                .next_response_timestamp(&b.account_id, &rid, t)
                .unwrap(),
            t
        );
    }

    #[test]
    fn a_version_2_database_keeps_its_requests_when_migrated() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATION_1).unwrap();
        conn.execute_batch(MIGRATION_2).unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        let a = account("a");
        conn.execute(
            "INSERT INTO accounts (account_id, server_url, server_public_key, upn, display_name,
                 server_name, device_key_alias, push_kind, enrolled_at_ms)
             VALUES (?1, 'https://id.example/', ?2, 'u', 'U', 'S', 'a', 'longpoll', 5)",
            params![a.account_id.as_str(), &a.server_public_key.as_bytes()[..]],
        )
        .unwrap();
        let rid = RequestId::random();
        conn.execute(
            "INSERT INTO requests (request_id, account_id, details, signature, expires_at_ms,
                 created_at_ms, fetched_at_ms, last_response_ms) VALUES (?1, ?2, 'd', 's', 9, 1, 1, 7)",
            params![rid.as_str(), a.account_id.as_str()],
        )
        .unwrap();
        let store = Store::init(conn).unwrap();
        let kept = store.request(&a.account_id, &rid).unwrap().unwrap();
        assert_eq!(kept.signed.details, "d");
        assert_eq!(
            store
                .next_response_timestamp(&a.account_id, &rid, UnixMillis(1))
                .unwrap(),
            UnixMillis(8),
            "the last response timestamp survived"
        );
        let version: i64 = store
            .conn()
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }
}
