//! Append-only audit log. Entries name events, users, ids and outcomes; never numbers, codes,
//! keys, signatures or nonces.
use std::fmt;

use crate::store::{now_ms, Pool};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    PolicyChanged,
    UserAdded,
    RegistrationLinkIssued,
    Enrolled,
    PasswordlessEnabled,
    SignInStarted,
    SignInDecision,
    WrongNumber,
    SignInFailed,
    PasswordSet,
    GroupMemberAdded,
    WebSignIn,
    WebSignOut,
    PushDelivery,
    PushTokenStale,
    RateLimited,
    SignInPaused,
    UserPaused,
    UserResumed,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::PolicyChanged => "policy_changed",
            Event::UserAdded => "user_added",
            Event::RegistrationLinkIssued => "registration_link_issued",
            Event::Enrolled => "enrolled",
            Event::PasswordlessEnabled => "passwordless_enabled",
            Event::SignInStarted => "signin_started",
            Event::SignInDecision => "signin_decision",
            Event::WrongNumber => "wrong_number",
            Event::SignInFailed => "signin_failed",
            Event::PasswordSet => "password_set",
            Event::GroupMemberAdded => "group_member_added",
            Event::WebSignIn => "web_signin",
            Event::WebSignOut => "web_signout",
            Event::PushDelivery => "push_delivery",
            Event::PushTokenStale => "push_token_stale",
            Event::RateLimited => "rate_limited",
            Event::SignInPaused => "signin_paused",
            Event::UserPaused => "user_paused",
            Event::UserResumed => "user_resumed",
        }
    }
}

/// One audit entry to write.
#[derive(Debug, Clone, Default)]
pub struct Entry<'a> {
    pub upn: Option<&'a str>,
    pub account_id: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub outcome: &'a str,
}

/// How often `record` retries after another writer took the same `seq` (PostgreSQL only).
const SEQ_RETRIES: usize = 100;

pub async fn record(pool: &Pool, event: Event, e: Entry<'_>) -> sqlx::Result<()> {
    // `seq` is computed inside the INSERT, one statement. SQLite serializes writers, so it never
    // collides there; on PostgreSQL two concurrent writers can compute the same `seq`: the
    // second waits for the first to commit, then fails on the primary key, and is retried
    // (the audit order is the commit order, without gaps).
    let at = now_ms();
    let mut attempt = 0;
    loop {
        let inserted = sqlx::query(
            "INSERT INTO audit_log (seq, at, event, upn, account_id, request_id, outcome) \
             SELECT COALESCE(MAX(seq), 0) + 1, $1, $2, $3, $4, $5, $6 FROM audit_log",
        )
        .bind(at)
        .bind(event.as_str())
        .bind(e.upn)
        .bind(e.account_id)
        .bind(e.request_id)
        .bind(e.outcome)
        .execute(pool)
        .await;
        match inserted {
            Ok(_) => return Ok(()),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() && attempt < SEQ_RETRIES => {
                attempt += 1;
                tokio::task::yield_now().await;
            }
            Err(other) => return Err(other),
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Row {
    pub seq: i64,
    pub at: i64,
    pub event: String,
    pub upn: Option<String>,
    pub account_id: Option<String>,
    pub request_id: Option<String>,
    pub outcome: String,
}

impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = crate::rfc3339(self.at);
        write!(f, "{} {at} {}", self.seq, self.event)?;
        if let Some(u) = &self.upn {
            write!(f, " upn={u}")?;
        }
        if let Some(a) = &self.account_id {
            write!(f, " account={a}")?;
        }
        if let Some(r) = &self.request_id {
            write!(f, " request={r}")?;
        }
        write!(f, " outcome={}", self.outcome)
    }
}

pub async fn list(pool: &Pool) -> sqlx::Result<Vec<Row>> {
    sqlx::query_as(
        "SELECT seq, at, event, upn, account_id, request_id, outcome FROM audit_log ORDER BY seq",
    )
    .fetch_all(pool)
    .await
}
