//! Append-only audit log. Entries name events, users, ids and outcomes; never numbers, codes,
//! keys, signatures or nonces.
use std::fmt;

use authenticator_protocol::text;

use crate::store::audit::NewAuditRow;
use crate::store::{self, now_ms, Pool, StoreResult};

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
    ApplicationAdded,
    ApplicationRemoved,
    DeviceRemoved,
    /// Another of the user's devices approved a device that awaited approval.
    DeviceApproved,
    TemporaryPassIssued,
    TemporaryPassUsed,
    /// A fallback sign-in try (TOTP or backup code); the outcome names the method and result.
    FallbackUsed,
    BackupCodesCreated,
    FallbackUnlocked,
    /// [`crate::trust::authenticate`] refused a credential (held or removed device, disabled
    /// or paused user); the outcome names why and the method.
    AccessRefused,
    /// Sessions and tokens ended (pause, disable, sign out everywhere); the outcome says why
    /// and how many.
    SessionsEnded,
    UserDisabled,
    UserEnabled,
    /// A user's UPN changed (`admin user rename`, or to lower case at start); the entry is
    /// under the new UPN, the outcome names the old.
    UserRenamed,
    /// The backup codes a reported device's session created were deleted.
    BackupCodesRevoked,
    /// A phone was added held (from a single-factor session); the outcome says until when.
    DeviceHeld,
    /// OpenID Connect tokens of one grant were revoked: a spent refresh token presented again
    /// (its whole family), or a client's revocation request (RFC 7009). The outcome says which
    /// and how many.
    TokensRevoked,
    /// A user's attributes were set (`admin user set`); the outcome names the fields, never
    /// their values.
    UserAttributesSet,
    /// A device replaced its push channel (PROTOCOL.md §5.10); the outcome is the new kind.
    PushRegistrationUpdated,
    /// A device vouched for moving its account to a new phone (PROTOCOL.md §5.11): a move
    /// code was issued; the outcome says whether TOTP accounts were left with it.
    MoveVouched,
    /// A new phone enrolled with a move code: active at once; the outcome names the device
    /// that vouched.
    Moved,
}

impl Event {
    /// Every event, in the order OPERATIONS.md lists them.
    pub const ALL: [Event; 40] = [
        Event::PolicyChanged,
        Event::UserAdded,
        Event::RegistrationLinkIssued,
        Event::Enrolled,
        Event::PasswordlessEnabled,
        Event::SignInStarted,
        Event::SignInDecision,
        Event::WrongNumber,
        Event::SignInFailed,
        Event::PasswordSet,
        Event::GroupMemberAdded,
        Event::WebSignIn,
        Event::WebSignOut,
        Event::PushDelivery,
        Event::PushTokenStale,
        Event::RateLimited,
        Event::SignInPaused,
        Event::UserPaused,
        Event::UserResumed,
        Event::ApplicationAdded,
        Event::ApplicationRemoved,
        Event::DeviceRemoved,
        Event::DeviceApproved,
        Event::TemporaryPassIssued,
        Event::TemporaryPassUsed,
        Event::FallbackUsed,
        Event::BackupCodesCreated,
        Event::FallbackUnlocked,
        Event::AccessRefused,
        Event::SessionsEnded,
        Event::UserDisabled,
        Event::UserEnabled,
        Event::DeviceHeld,
        Event::UserRenamed,
        Event::BackupCodesRevoked,
        Event::TokensRevoked,
        Event::UserAttributesSet,
        Event::PushRegistrationUpdated,
        Event::MoveVouched,
        Event::Moved,
    ];

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
            Event::ApplicationAdded => "application_added",
            Event::ApplicationRemoved => "application_removed",
            Event::DeviceRemoved => "device_removed",
            Event::DeviceApproved => "device_approved",
            Event::TemporaryPassIssued => "temporary_pass_issued",
            Event::TemporaryPassUsed => "temporary_pass_used",
            Event::FallbackUsed => "fallback_used",
            Event::BackupCodesCreated => "backup_codes_created",
            Event::FallbackUnlocked => "fallback_unlocked",
            Event::AccessRefused => "access_refused",
            Event::SessionsEnded => "sessions_ended",
            Event::UserDisabled => "user_disabled",
            Event::UserEnabled => "user_enabled",
            Event::DeviceHeld => "device_held",
            Event::UserRenamed => "user_renamed",
            Event::BackupCodesRevoked => "backup_codes_revoked",
            Event::TokensRevoked => "tokens_revoked",
            Event::UserAttributesSet => "user_attributes_set",
            Event::PushRegistrationUpdated => "push_registration_updated",
            Event::MoveVouched => "move_vouched",
            Event::Moved => "moved",
        }
    }

    pub fn parse(text: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.as_str() == text)
    }
}

/// Who did what an entry records: stored as text, `admin:<upn>`, `cli`, `user:<upn>`,
/// `device:<account id>`, `application:<client id>` or `system` (OPERATIONS.md, "Audit").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// An administrator on the admin pages.
    Admin(String),
    /// An administrator at the server's command line (`signin-server admin …`).
    CommandLine,
    /// The user themselves (on the pages, or by typing their name where a sign-in starts).
    User(String),
    /// One of the user's devices (its account id): an enrollment, an answer, a report.
    Device(String),
    /// A registered application (its client id).
    Application(String),
    /// The server on its own: deliveries, limits, waiting periods, refusals.
    System,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Admin(upn) => write!(f, "admin:{upn}"),
            Actor::CommandLine => f.write_str("cli"),
            Actor::User(upn) => write!(f, "user:{upn}"),
            Actor::Device(id) => write!(f, "device:{id}"),
            Actor::Application(id) => write!(f, "application:{id}"),
            Actor::System => f.write_str("system"),
        }
    }
}

tokio::task_local! {
    static ACTING: Actor;
}

/// Runs `work` with `actor` as the actor of every entry it records that does not name its own:
/// the admin pages run each action as `Actor::Admin`, the command line as `Actor::CommandLine`.
pub async fn acting_as<F: std::future::Future>(actor: Actor, work: F) -> F::Output {
    ACTING.scope(actor, work).await
}

/// The actor of an entry: its own, else the one [`acting_as`] set, else who does `event` when
/// nobody says otherwise (the device that answered, the user who signed in, the server).
fn actor_of(event: Event, e: &Entry<'_>) -> Actor {
    if let Some(a) = &e.actor {
        return a.clone();
    }
    if let Ok(a) = ACTING.try_with(Actor::clone) {
        return a;
    }
    let device = || {
        e.account_id
            .map_or(Actor::System, |d| Actor::Device(d.to_owned()))
    };
    let user = || e.upn.map_or(Actor::System, |u| Actor::User(u.to_owned()));
    match event {
        Event::Enrolled
        | Event::PasswordlessEnabled
        | Event::SignInDecision
        | Event::WrongNumber
        | Event::UserPaused => device(),
        // Another of the user's devices approved; `by=waiting_period` is the server's.
        Event::DeviceApproved if e.outcome == "ok" => device(),
        Event::DeviceRemoved if e.outcome == "by_device" => device(),
        Event::SignInStarted
        | Event::SignInFailed
        | Event::WebSignIn
        | Event::WebSignOut
        | Event::FallbackUsed
        | Event::TemporaryPassUsed
        | Event::BackupCodesCreated
        | Event::DeviceHeld
        | Event::RegistrationLinkIssued => user(),
        Event::DeviceRemoved if e.outcome == "by_user" => user(),
        Event::SessionsEnded if e.outcome.starts_with("sign_out_everywhere") => user(),
        _ => Actor::System,
    }
}

/// One audit entry to write.
#[derive(Debug, Clone, Default)]
pub struct Entry<'a> {
    pub upn: Option<&'a str>,
    pub account_id: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub outcome: &'a str,
    /// Who acted, when the caller knows better than [`acting_as`] and the event's default.
    pub actor: Option<Actor>,
}

/// Appends one entry.
pub async fn record(pool: &Pool, event: Event, e: Entry<'_>) -> StoreResult<()> {
    let actor = actor_of(event, &e).to_string();
    store::audit::append(
        pool,
        NewAuditRow {
            at: now_ms(),
            event: event.as_str(),
            upn: e.upn,
            account_id: e.account_id,
            request_id: e.request_id,
            outcome: e.outcome,
            actor: &actor,
        },
    )
    .await
}

/// The row [`record`] would append, owned, for a write unit that appends it in its own
/// transaction (`store::group_commit`).
pub fn owned(event: Event, e: Entry<'_>) -> store::audit::OwnedAuditRow {
    store::audit::OwnedAuditRow {
        at: now_ms(),
        event: event.as_str(),
        upn: e.upn.map(str::to_owned),
        account_id: e.account_id.map(str::to_owned),
        request_id: e.request_id.map(str::to_owned),
        outcome: e.outcome.to_owned(),
        actor: actor_of(event, &e).to_string(),
    }
}

/// One stored entry; `Display` is the line `admin audit` prints.
pub use crate::store::audit::AuditRow as Row;

impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Users' names and outcomes can hold text someone else chose: escaped for terminals.
        let at = crate::format::rfc3339(self.at);
        write!(f, "{} {at} {}", self.seq, self.event)?;
        if let Some(u) = &self.upn {
            write!(f, " upn={}", text::escape(u))?;
        }
        if let Some(a) = &self.account_id {
            write!(f, " account={a}")?;
        }
        if let Some(r) = &self.request_id {
            write!(f, " request={r}")?;
        }
        write!(f, " outcome={}", text::escape(&self.outcome))?;
        if self.repeats > 0 {
            write!(
                f,
                " repeats={} last={}",
                self.repeats,
                crate::format::rfc3339(self.last_at.unwrap_or(self.at))
            )?;
        }
        if let Some(a) = &self.actor {
            write!(f, " by={}", text::escape(a))?;
        }
        Ok(())
    }
}

/// Every entry, oldest first.
pub async fn list(pool: &Pool) -> StoreResult<Vec<Row>> {
    store::audit::all(pool).await
}

/// The entries `filter` selects, newest first.
pub async fn query(pool: &Pool, filter: &store::audit::AuditFilter) -> StoreResult<Vec<Row>> {
    store::audit::query(pool, filter).await
}

/// An entry as exported (`admin audit --format csv|json`, the audit page's export): every
/// field, times in RFC 3339 (UTC).
#[derive(Debug, serde::Serialize)]
pub struct Exported<'a> {
    pub seq: i64,
    pub at: String,
    pub event: &'a str,
    pub actor: Option<&'a str>,
    pub upn: Option<&'a str>,
    pub account_id: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub outcome: &'a str,
    /// How many identical entries followed (counted on this one).
    pub repeats: i64,
    pub last_at: Option<String>,
}

impl<'a> From<&'a Row> for Exported<'a> {
    fn from(r: &'a Row) -> Self {
        Exported {
            seq: r.seq,
            at: crate::format::rfc3339(r.at),
            event: &r.event,
            actor: r.actor.as_deref(),
            upn: r.upn.as_deref(),
            account_id: r.account_id.as_deref(),
            request_id: r.request_id.as_deref(),
            outcome: &r.outcome,
            repeats: r.repeats,
            last_at: r.last_at.map(crate::format::rfc3339),
        }
    }
}

/// The entries as a JSON array of [`Exported`].
pub fn to_json(rows: &[Row]) -> serde_json::Result<String> {
    serde_json::to_string_pretty(&rows.iter().map(Exported::from).collect::<Vec<_>>())
}

/// A CSV cell a spreadsheet will not run: text someone else chose (a user name, an outcome)
/// that starts like a formula gets a leading `'` (OWASP "CSV injection").
fn inert_cell(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}").into()
    } else {
        text.into()
    }
}

/// The entries as CSV (RFC 4180, a header row, the fields of [`Exported`]); cells that would
/// start a spreadsheet formula begin with `'`.
pub fn to_csv(rows: &[Row]) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "seq",
        "at",
        "event",
        "actor",
        "upn",
        "account_id",
        "request_id",
        "outcome",
        "repeats",
        "last_at",
    ])?;
    for r in rows {
        let e = Exported::from(r);
        let seq = e.seq.to_string();
        let repeats = e.repeats.to_string();
        w.write_record([
            seq.as_str(),
            e.at.as_str(),
            &inert_cell(e.event),
            &inert_cell(e.actor.unwrap_or_default()),
            &inert_cell(e.upn.unwrap_or_default()),
            &inert_cell(e.account_id.unwrap_or_default()),
            &inert_cell(e.request_id.unwrap_or_default()),
            &inert_cell(e.outcome),
            repeats.as_str(),
            e.last_at.as_deref().unwrap_or_default(),
        ])?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8(bytes).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(upn: &str, outcome: &str) -> Row {
        Row {
            seq: 7,
            at: 0,
            event: "user_added".into(),
            upn: Some(upn.into()),
            account_id: None,
            request_id: None,
            outcome: outcome.into(),
            repeats: 0,
            last_at: None,
            actor: Some("admin:ada@contoso.test".into()),
        }
    }

    #[test]
    fn every_event_has_a_distinct_name_that_parses_back() {
        let mut names: Vec<&str> = Event::ALL.iter().map(|e| e.as_str()).collect();
        for e in Event::ALL {
            assert_eq!(Event::parse(e.as_str()), Some(e));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Event::ALL.len());
    }

    #[test]
    fn operations_md_documents_every_event_name() {
        let doc = include_str!("../../docs/OPERATIONS.md");
        for e in Event::ALL {
            assert!(
                doc.contains(&format!("| `{}` |", e.as_str())),
                "{} is not in OPERATIONS.md's table of audit events",
                e.as_str()
            );
        }
    }

    #[test]
    fn csv_quotes_commas_and_quotes_and_defuses_formulas() {
        let csv = to_csv(&[row("a,b@contoso.test", "=HYPERLINK(\"x\")")]).unwrap();
        let mut lines = csv.lines();
        assert_eq!(
            lines.next().unwrap(),
            "seq,at,event,actor,upn,account_id,request_id,outcome,repeats,last_at"
        );
        assert_eq!(
            lines.next().unwrap(),
            "7,1970-01-01T00:00:00Z,user_added,admin:ada@contoso.test,\"a,b@contoso.test\",,,\"'=HYPERLINK(\"\"x\"\")\",0,"
        );
    }

    #[test]
    fn json_names_every_field() {
        let json: serde_json::Value =
            serde_json::from_str(&to_json(&[row("bob@contoso.test", "ok")]).unwrap()).unwrap();
        assert_eq!(json[0]["actor"], "admin:ada@contoso.test");
        assert_eq!(json[0]["upn"], "bob@contoso.test");
        assert_eq!(json[0]["at"], "1970-01-01T00:00:00Z");
        assert_eq!(json[0]["event"], "user_added");
    }

    #[test]
    fn an_entry_names_its_own_actor_else_the_scoped_one_else_the_events() {
        let entry = |account_id, outcome| Entry {
            upn: Some("bob@contoso.test"),
            account_id,
            outcome,
            ..Default::default()
        };
        let device = entry(Some("DEV"), "approved");
        assert_eq!(
            actor_of(Event::SignInDecision, &device),
            Actor::Device("DEV".into())
        );
        assert_eq!(
            actor_of(Event::WebSignIn, &entry(None, "phone_sign_in")),
            Actor::User("bob@contoso.test".into())
        );
        assert_eq!(
            actor_of(Event::PushDelivery, &entry(Some("DEV"), "apns:sent")),
            Actor::System
        );
        assert_eq!(
            actor_of(
                Event::DeviceApproved,
                &entry(Some("DEV"), "by=waiting_period")
            ),
            Actor::System
        );
        let own = Entry {
            actor: Some(Actor::Application("app1".into())),
            ..entry(None, "revoked_by_client")
        };
        assert_eq!(
            actor_of(Event::TokensRevoked, &own),
            Actor::Application("app1".into())
        );
        let scoped = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(acting_as(Actor::Admin("ada@contoso.test".into()), async {
                actor_of(Event::PasswordSet, &entry(None, "ok"))
            }));
        assert_eq!(scoped, Actor::Admin("ada@contoso.test".into()));
        assert_eq!(
            actor_of(Event::PasswordSet, &entry(None, "ok")),
            Actor::System
        );
    }
}
