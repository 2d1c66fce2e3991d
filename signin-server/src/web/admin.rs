//! Admin pages (members of the `admins` group): the Authenticator policy, users, groups and the
//! audit log.
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

use super::pages::{admin_nav, csrf, layout, notice, Notice};
use super::{admin_user, page, Session, User, WebError};
use signin_domain::audit::{self, Actor, Event};
use signin_domain::rules::policy::{self, Mode, Policy, PolicyError, PolicyUpdate, Scope, Target};
use signin_domain::state::AppState;
use signin_domain::store::audit::AuditFilter;
use signin_domain::store::users;

/// How many audit entries the audit page shows (newest first).
pub const AUDIT_PAGE_ROWS: i64 = 50;
/// At most this many entries go into one export (the filters narrow it).
pub const AUDIT_EXPORT_ROWS: i64 = 10_000;

pub(crate) fn admin_page(
    session: &Session,
    user: &User,
    title: &str,
    current: &str,
    body: Markup,
) -> Response {
    page(
        session,
        layout(
            title,
            Some((user, session)),
            html! {
                (admin_nav(current))
                section.card { h1 { (title) } (body) }
            },
        ),
    )
}

fn checkbox(name: &str, label: &str, hint: &str, checked: bool) -> Markup {
    let hint_id = format!("{name}-hint");
    html! {
        label.choice for=(name) {
            input type="checkbox" id=(name) name=(name) value="on" checked[checked] aria-describedby=(hint_id);
            span { (label) }
        }
        p.hint id=(hint_id) { (hint) }
    }
}

fn radio(name: &str, value: &str, label: &str, hint: &str, checked: bool) -> Markup {
    let id = format!("{name}-{value}");
    let hint_id = format!("{id}-hint");
    html! {
        label.choice for=(id) {
            input type="radio" id=(id) name=(name) value=(value) checked[checked] aria-describedby=(hint_id);
            span { (label) }
        }
        p.hint id=(hint_id) { (hint) }
    }
}

/// Whom an additional-context feature is for: one group (empty: everyone the policy targets)
/// and the excluded groups (fields `<name>_group`, `<name>_except`).
fn scope_fields(name: &str, what: &str, scope: &Scope) -> Markup {
    let group = match &scope.include {
        Target::Group(g) => g.as_str(),
        Target::All => "",
    };
    let (group_id, except_id) = (format!("{name}_group"), format!("{name}_except"));
    let hint_id = format!("{name}-scope-hint");
    html! {
        div.scope {
            label for=(group_id) { "Show the " (what) " only to group" }
            input type="text" id=(group_id) name=(group_id) value=(group) autocomplete="off" aria-describedby=(hint_id);
            label for=(except_id) { "Never to groups" }
            input type="text" id=(except_id) name=(except_id) value=(scope.exclude.join(", ")) autocomplete="off" aria-describedby=(hint_id);
            p.hint id=(hint_id) { "Among the users the policy targets. Empty group: all of them; groups comma-separated." }
        }
    }
}

/// The scope changes the form's `group` and `except` fields ask for (absent: none).
fn scope_of(
    group: Option<&str>,
    except: Option<&str>,
) -> Result<(Option<Target>, Option<Vec<String>>), PolicyError> {
    let include = match group.map(str::trim) {
        None => None,
        Some("") => Some(Target::All),
        Some(g) => Some(Target::parse(&format!("group:{g}"))?),
    };
    Ok((include, except.map(exclude_of)))
}

fn policy_form(session: &Session, p: &Policy, n: Notice<'_>) -> Markup {
    let group = match &p.target {
        Target::Group(g) => g.as_str(),
        Target::All => "",
    };
    html! {
        p { "Passwordless phone sign-in and push approvals with the Authenticator app, for your users." }
        (notice(n))
        form method="post" action="/admin/policy" {
            (csrf(session))
            fieldset {
                legend { "Enable and target" }
                (checkbox("enabled", "Enable the Authenticator app", "Users in the target may register the app and use it to sign in.", p.enabled))
                (radio("target", "all", "All users", "Every user may use the app.", p.target == Target::All))
                (radio("target", "group", "Select group", "Only members of the group below.", matches!(p.target, Target::Group(_))))
                label for="group" { "Group" }
                input type="text" id="group" name="group" value=(group) autocomplete="off";
                label for="exclude" { "Exclude groups" }
                input type="text" id="exclude" name="exclude" value=(p.exclude.join(", ")) autocomplete="off"
                    aria-describedby="exclude-hint";
                p.hint id="exclude-hint" {
                    "Comma-separated. Members of these groups are left out even when the target includes them: "
                    "the policy treats them as users it does not target."
                }
            }
            fieldset {
                legend { "Authentication mode" }
                (radio("mode", "any", "Any", "Phone sign-in and push approval after a password.", p.mode == Mode::Any))
                (radio("mode", "push", "Push", "Only push approval after a password (second factor).", p.mode == Mode::Push))
                (radio("mode", "passwordless", "Passwordless", "Only phone sign-in: no password.", p.mode == Mode::Passwordless))
            }
            fieldset {
                legend { "Configure: additional context" }
                (checkbox("number_matching", "Require number matching for push notifications",
                    "Phone sign-in always uses number matching; it cannot be switched off in passwordless mode.", p.number_matching))
                (checkbox("show_app_name", "Show application name in push and passwordless notifications",
                    "The phone shows which application asks.", p.show_app_name))
                (scope_fields("app_name", "application name", &p.app_name_scope))
                (checkbox("show_location", "Show geographic location in push and passwordless notifications",
                    "The phone shows where the sign-in comes from (\u{201c}Unknown location\u{201d} when it cannot tell).", p.show_location))
                (scope_fields("location", "location", &p.location_scope))
                (checkbox("new_device_approval", "New devices need approval from one of the user's devices",
                    "A device added for a user who already has one gets no sign-ins until one of their other devices approves it. Off: they are only told.", p.new_device_approval))
                (checkbox("phishing_resistant", "Phishing-resistant sign-in (bind the approval to the browser)",
                    "Sign-ins on these pages can be approved only by the Authenticator on the same computer or phone as the browser, after it saw this page at this server's own address: a site that relays the page gets no session. Users then sign in on a device that has the Authenticator. Needs the server's public URL.", p.phishing_resistant))
                label for="number_length" { "Digits of the number to type" }
                input type="number" id="number_length" name="number_length" min="2" max="6" required
                    value=(p.number_length) aria-describedby="number_length-hint";
                p.hint id="number_length-hint" {
                    "2 to 6. A user whose risk is elevated (a recent \u{201c}this wasn\u{2019}t me\u{201d} report, \
                     a burst of refused sign-ins) gets at least 4 digits, a high risk 6."
                }
            }
            div.actions { button type="submit" id="save" { "Save" } }
        }
    }
}

/// `GET /admin/policy`
pub async fn policy_page(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, WebError> {
    let user = admin_user(&state, &session).await?;
    let p = signin_domain::rules::policy::load(&state.pool)
        .await
        .map_err(WebError::Internal)?;
    let fallback = super::fallback::admin_card(&state, &session).await?;
    let body = html! { (policy_form(&session, &p, Notice::None)) (fallback) };
    Ok(admin_page(
        &session,
        &user,
        "Authenticator policy",
        "/admin/policy",
        body,
    ))
}

#[derive(Debug, Deserialize)]
pub struct PolicyForm {
    pub csrf: String,
    pub enabled: Option<String>,
    pub target: String,
    #[serde(default)]
    pub group: String,
    pub mode: String,
    pub number_matching: Option<String>,
    pub show_app_name: Option<String>,
    pub show_location: Option<String>,
    /// Absent (an older form): the length stays as it is.
    pub number_length: Option<String>,
    pub new_device_approval: Option<String>,
    pub phishing_resistant: Option<String>,
    /// The excluded groups, comma-separated; absent (an older form): they stay as they are.
    pub exclude: Option<String>,
    /// Whom the application name and the location are shown to (absent: as they are).
    pub app_name_group: Option<String>,
    pub app_name_except: Option<String>,
    pub location_group: Option<String>,
    pub location_except: Option<String>,
}

/// The excluded groups of the form's comma-separated field.
fn exclude_of(field: &str) -> Vec<String> {
    field
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `POST /admin/policy`: every setting at once; audited; effective at once.
pub async fn save_policy(
    State(state): State<AppState>,
    session: Session,
    Form(f): Form<PolicyForm>,
) -> Result<Response, WebError> {
    session.check_csrf(&f.csrf)?;
    let user = admin_user(&state, &session).await?;
    let current = signin_domain::rules::policy::load(&state.pool)
        .await
        .map_err(WebError::Internal)?;
    let parsed = (|| {
        let target = match f.target.as_str() {
            "all" => Target::All,
            "group" => Target::parse(&format!("group:{}", f.group.trim()))?,
            _ => return Err(PolicyError::BadTarget),
        };
        let (app_name_target, app_name_exclude) =
            scope_of(f.app_name_group.as_deref(), f.app_name_except.as_deref())?;
        let (location_target, location_exclude) =
            scope_of(f.location_group.as_deref(), f.location_except.as_deref())?;
        Ok(PolicyUpdate {
            app_name_target,
            app_name_exclude,
            location_target,
            location_exclude,
            enabled: Some(f.enabled.is_some()),
            target: Some(target),
            mode: Some(Mode::parse(&f.mode)?),
            number_matching: Some(f.number_matching.is_some()),
            show_app_name: Some(f.show_app_name.is_some()),
            show_location: Some(f.show_location.is_some()),
            new_device_approval: Some(f.new_device_approval.is_some()),
            phishing_resistant: Some(f.phishing_resistant.is_some()),
            exclude: f.exclude.as_deref().map(exclude_of),
            number_length: f
                .number_length
                .as_deref()
                .map(|n| n.trim().parse().map_err(|_| PolicyError::BadNumberLength))
                .transpose()?,
        })
    })();
    let draft = draft_of(&current, &f);
    let update = match parsed {
        Ok(u) => u,
        Err(e) => return policy_error(&state, &session, &user, &draft, &e).await,
    };
    // Checked here for the message; `set_policy` checks the settings again.
    let next = match current.apply(&update) {
        Ok(next) => next,
        Err(e) => return policy_error(&state, &session, &user, &draft, &e).await,
    };
    if let Err(e) = policy::check_setup(&state.pool, &next).await? {
        return policy_error(&state, &session, &user, &draft, &e).await;
    }
    let saved = audit::acting_as(
        Actor::Admin(user.upn.clone()),
        signin_domain::accounts::set_policy(&state.pool, &update),
    )
    .await
    .map_err(WebError::Internal)?;
    let fallback = super::fallback::admin_card(&state, &session).await?;
    let body = html! {
        (policy_form(&session, &saved, Notice::Info("Policy saved. It applies to new requests at once.")))
        (fallback)
    };
    Ok(admin_page(
        &session,
        &user,
        "Authenticator policy",
        "/admin/policy",
        body,
    ))
}

/// The policy as the admin submitted it, valid or not: what a refused save shows again, so
/// that no edit is lost. What does not parse keeps the current value.
fn draft_of(current: &Policy, f: &PolicyForm) -> Policy {
    Policy {
        enabled: f.enabled.is_some(),
        target: if f.target == "group" {
            Target::Group(f.group.trim().to_owned())
        } else {
            Target::All
        },
        mode: Mode::parse(&f.mode).unwrap_or(current.mode),
        number_matching: f.number_matching.is_some(),
        show_app_name: f.show_app_name.is_some(),
        show_location: f.show_location.is_some(),
        number_length: f
            .number_length
            .as_deref()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(current.number_length),
        new_device_approval: f.new_device_approval.is_some(),
        phishing_resistant: f.phishing_resistant.is_some(),
        exclude: f
            .exclude
            .as_deref()
            .map_or_else(|| current.exclude.clone(), exclude_of),
        app_name_scope: draft_scope(
            &current.app_name_scope,
            f.app_name_group.as_deref(),
            f.app_name_except.as_deref(),
        ),
        location_scope: draft_scope(
            &current.location_scope,
            f.location_group.as_deref(),
            f.location_except.as_deref(),
        ),
    }
}

/// A scope as submitted, valid or not (what a refused save shows again).
fn draft_scope(current: &Scope, group: Option<&str>, except: Option<&str>) -> Scope {
    Scope {
        include: match group.map(str::trim) {
            None => current.include.clone(),
            Some("") => Target::All,
            Some(g) => Target::Group(g.to_owned()),
        },
        exclude: except.map_or_else(|| current.exclude.clone(), exclude_of),
    }
}

/// The policy page again with what the admin submitted and why it was not saved (422).
async fn policy_error(
    state: &AppState,
    session: &Session,
    user: &User,
    draft: &Policy,
    e: &PolicyError,
) -> Result<Response, WebError> {
    let text = match e {
        PolicyError::NumberMatchingRequired => {
            "Not saved: number matching cannot be switched off when the mode is passwordless.".to_owned()
        }
        PolicyError::BadTarget => "Not saved: enter the group name, or choose all users.".to_owned(),
        PolicyError::BadMode => "Not saved: choose an authentication mode.".to_owned(),
        PolicyError::BadNumberLength => "Not saved: the number has 2 to 6 digits.".to_owned(),
        PolicyError::UnsafeGroup(_) => {
            "Not saved: a group name may hold no control, format, private-use or unassigned character.".to_owned()
        }
        PolicyError::UnknownGroup(g) => {
            let mut groups: Vec<String> = users::memberships(&state.pool)
                .await?
                .into_iter()
                .map(|(_, g)| g)
                .collect();
            groups.dedup();
            let known = if groups.is_empty() {
                "There are no groups yet: add members on the Groups page.".to_owned()
            } else {
                format!("Groups: {}.", groups.join(", "))
            };
            format!("Not saved: there is no group \u{201c}{g}\u{201d} (a group exists while it has members). {known}")
        }
        PolicyError::NeedsPublicUrl => "Not saved: phishing-resistant sign-in needs the server\u{2019}s public URL \
             (signin-server serve --public-url https://\u{2026}); without it every sign-in on these pages would be refused. \
             Set the public URL first, or leave it off."
            .to_owned(),
    };
    let fallback = super::fallback::admin_card(state, session).await?;
    let body = html! { (policy_form(session, draft, Notice::Error(&text))) (fallback) };
    let mut r = admin_page(session, user, "Authenticator policy", "/admin/policy", body);
    *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    Ok(r)
}

async fn users_body(
    state: &AppState,
    session: &Session,
    search: &str,
    n: Notice<'_>,
) -> Result<Markup, WebError> {
    let listed = if search.trim().is_empty() {
        let users = users::overview(&state.pool).await?;
        let memberships = users::memberships(&state.pool).await?;
        super::admin_helpdesk::users_table(&users, &memberships)
    } else {
        super::admin_helpdesk::search_results(state, search.trim()).await?
    };
    Ok(html! {
        (notice(n))
        form.filters method="get" action="/admin/users" role="search" {
            div {
                label for="q" { "Find a user (part of the name or UPN)" }
                input type="search" id="q" name="q" value=(search) autocomplete="off" spellcheck="false";
            }
            div.actions { button type="submit" id="search" { "Search" } }
        }
        (listed)
        h2 { "Add user" }
        form method="post" action="/admin/users" {
            (csrf(session))
            label for="new-upn" { "User principal name (UPN)" }
            input type="text" id="new-upn" name="upn" required autocomplete="off" spellcheck="false";
            label for="new-name" { "Display name" }
            input type="text" id="new-name" name="name" required autocomplete="off";
            label for="new-groups" { "Groups" }
            input type="text" id="new-groups" name="groups" autocomplete="off" aria-describedby="new-groups-hint";
            p.hint id="new-groups-hint" { "Comma-separated, for example: pilot, admins (members of admins manage this site)." }
            label for="new-password" { "Password (optional)" }
            input type="password" id="new-password" name="password" autocomplete="new-password" aria-describedby="new-password-hint";
            p.hint id="new-password-hint" { "At least 8 characters. Without one, the user signs in with the phone only." }
            div.actions { button type="submit" id="add-user" { "Add user" } }
        }
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct UsersQuery {
    #[serde(default)]
    pub q: String,
}

/// `GET /admin/users`
pub async fn users_page(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<UsersQuery>,
) -> Result<Response, WebError> {
    let user = admin_user(&state, &session).await?;
    let body = users_body(&state, &session, &q.q, Notice::None).await?;
    Ok(admin_page(&session, &user, "Users", "/admin/users", body))
}

#[derive(Deserialize)]
pub struct AddUserForm {
    pub csrf: String,
    pub upn: String,
    pub name: String,
    #[serde(default)]
    pub groups: String,
    #[serde(default)]
    pub password: String,
}

/// `POST /admin/users`
pub async fn add_user(
    State(state): State<AppState>,
    session: Session,
    Form(f): Form<AddUserForm>,
) -> Result<Response, WebError> {
    session.check_csrf(&f.csrf)?;
    let user = admin_user(&state, &session).await?;
    let groups: Vec<String> = f
        .groups
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect();
    let result = audit::acting_as(Actor::Admin(user.upn.clone()), async {
        let upn = signin_domain::upn::Upn::parse(&f.upn).map_err(|e| anyhow::anyhow!("{e}"))?;
        if !f.password.is_empty() {
            // Checked before the user exists, so a bad password adds nobody.
            signin_domain::accounts::passwords::hash_password(&f.password)?;
        }
        signin_domain::accounts::add_user(&state.pool, upn.as_str(), &f.name, &groups).await?;
        if !f.password.is_empty() {
            signin_domain::accounts::passwords::set_password(
                &state.pool,
                upn.as_str(),
                &f.password,
            )
            .await?;
        }
        anyhow::Ok(upn)
    })
    .await;
    let message;
    let n = match &result {
        Ok(upn) => {
            message = format!("Added {upn}.");
            Notice::Info(&message)
        }
        Err(e) => {
            // The admin module's messages name the problem (never a password).
            message = format!("Not added: {e}");
            Notice::Error(&message)
        }
    };
    let body = users_body(&state, &session, "", n).await?;
    Ok(admin_page(&session, &user, "Users", "/admin/users", body))
}

async fn groups_body(
    state: &AppState,
    session: &Session,
    n: Notice<'_>,
) -> Result<Markup, WebError> {
    let memberships = users::memberships(&state.pool).await?;
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for (u, g) in &memberships {
        match groups.last_mut() {
            Some((name, members)) if name == g => members.push(u),
            _ => groups.push((g, vec![u])),
        }
    }
    Ok(html! {
        (notice(n))
        @if groups.is_empty() {
            p { "No groups yet." }
        } @else {
            table id="groups" {
                thead { tr { th scope="col" { "Group" } th scope="col" { "Members" } } }
                tbody {
                    @for (g, members) in &groups {
                        tr { td { (g) } td { (members.join(", ")) } }
                    }
                }
            }
        }
        h2 { "Add a member to a group" }
        p.hint { "A group exists while it has members. Target a group in the Authenticator policy." }
        form method="post" action="/admin/groups" {
            (csrf(session))
            label for="group-name" { "Group" }
            input type="text" id="group-name" name="group" required autocomplete="off";
            label for="member-upn" { "User (UPN)" }
            input type="text" id="member-upn" name="upn" required autocomplete="off" spellcheck="false";
            div.actions { button type="submit" id="add-member" { "Add member" } }
        }
    })
}

/// `GET /admin/groups`
pub async fn groups_page(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, WebError> {
    let user = admin_user(&state, &session).await?;
    let body = groups_body(&state, &session, Notice::None).await?;
    Ok(admin_page(&session, &user, "Groups", "/admin/groups", body))
}

#[derive(Debug, Deserialize)]
pub struct AddMemberForm {
    pub csrf: String,
    pub group: String,
    pub upn: String,
}

/// `POST /admin/groups`
pub async fn add_member(
    State(state): State<AppState>,
    session: Session,
    Form(f): Form<AddMemberForm>,
) -> Result<Response, WebError> {
    session.check_csrf(&f.csrf)?;
    let user = admin_user(&state, &session).await?;
    let message;
    let upn = signin_domain::upn::Upn::parse(&f.upn)
        .map_or_else(|_| f.upn.trim().to_owned(), |u| u.to_string());
    let added = audit::acting_as(
        Actor::Admin(user.upn.clone()),
        signin_domain::accounts::add_group_member(&state.pool, &f.group, &upn),
    )
    .await;
    let n = match added {
        Ok(()) => {
            message = format!("Added {} to {}.", upn, f.group.trim());
            Notice::Info(&message)
        }
        Err(e) => {
            message = format!("Not added: {e}");
            Notice::Error(&message)
        }
    };
    let body = groups_body(&state, &session, n).await?;
    Ok(admin_page(&session, &user, "Groups", "/admin/groups", body))
}

/// The audit page's query: filters by user, actor and text (parts, any case), event (from the
/// list) and time (`YYYY-MM-DD` or RFC 3339, UTC), and `before`/`after` (a `seq`) for the older
/// and newer pages.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    pub upn: String,
    #[serde(default)]
    pub event: String,
    #[serde(default)]
    pub actor: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub since: String,
    #[serde(default)]
    pub until: String,
    #[serde(default)]
    pub before: Option<i64>,
    #[serde(default)]
    pub after: Option<i64>,
    /// The export's format: `csv` or `json`.
    #[serde(default)]
    pub format: String,
}

/// `2026-12-02` (midnight UTC) or an RFC 3339 time, as Unix ms.
pub fn parse_time(text: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    let text = text.trim();
    let t = time::OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .or_else(|| {
            let format =
                time::format_description::parse_borrowed::<2>("[year]-[month]-[day]").ok()?;
            let date = time::Date::parse(text, &format).ok()?;
            Some(date.midnight().assume_utc())
        })?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

impl AuditQuery {
    /// The store filter for `limit` entries; a time or event that does not parse is an error
    /// to show.
    pub fn filter(&self, limit: i64) -> Result<AuditFilter, &'static str> {
        let opt = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        let time = |s: &str| match opt(s) {
            None => Ok(None),
            Some(t) => parse_time(&t)
                .map(Some)
                .ok_or("Times are YYYY-MM-DD or RFC 3339 (2026-12-02T10:00:00Z)."),
        };
        let event = match opt(&self.event) {
            None => None,
            Some(e) => Some(
                Event::parse(&e)
                    .ok_or("Choose an event from the list.")?
                    .as_str()
                    .to_owned(),
            ),
        };
        Ok(AuditFilter {
            upn: opt(&self.upn),
            event,
            actor: opt(&self.actor),
            text: opt(&self.text),
            since: time(&self.since)?,
            until: time(&self.until)?,
            before_seq: self.before,
            after_seq: self.after.filter(|_| self.before.is_none()),
            limit,
        })
    }

    /// The filters as query pairs (without paging).
    fn pairs(&self) -> Vec<(&'static str, &str)> {
        [
            ("upn", &self.upn),
            ("event", &self.event),
            ("actor", &self.actor),
            ("text", &self.text),
            ("since", &self.since),
            ("until", &self.until),
        ]
        .into_iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| (k, v.trim()))
        .collect()
    }

    /// `path` with the same filters and `extra`.
    fn link(&self, path: &str, extra: &[(&str, &str)]) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.extend_pairs(self.pairs());
        q.extend_pairs(extra);
        let q = q.finish();
        if q.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{q}")
        }
    }
}

pub const AUDIT_PATH: &str = "/admin/audit";
pub const AUDIT_EXPORT_PATH: &str = "/admin/audit/export";

/// `GET /admin/audit`: the newest entries first, filtered, [`AUDIT_PAGE_ROWS`] a page, with
/// links to the older and newer pages.
pub async fn audit_page(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<AuditQuery>,
) -> Result<Response, WebError> {
    let user = admin_user(&state, &session).await?;
    let (mut rows, error) = match q.filter(AUDIT_PAGE_ROWS + 1) {
        Ok(f) => (
            signin_domain::store::audit::query(&state.pool, &f).await?,
            None,
        ),
        Err(e) => (Vec::new(), Some(e)),
    };
    // One more than a page was read: it says whether there is another page that way.
    let more = i64::try_from(rows.len()).unwrap_or(i64::MAX) > AUDIT_PAGE_ROWS;
    let towards_newer = q.after.is_some() && q.before.is_none();
    if more {
        if towards_newer {
            rows.remove(0);
        } else {
            rows.pop();
        }
    }
    let has_older = if towards_newer {
        !rows.is_empty()
    } else {
        more
    };
    let has_newer = if towards_newer {
        more
    } else {
        q.before.is_some() && !rows.is_empty()
    };
    let export = |format: &str| q.link(AUDIT_EXPORT_PATH, &[("format", format)]);
    let body = html! {
        p { "Append-only record of who did what: policy changes, users, devices, sign-ins and decisions (newest first, " (AUDIT_PAGE_ROWS) " a page). Identical entries within a minute are one line with a repeat count." }
        form.filters method="get" action=(AUDIT_PATH) {
            div {
                label for="f-upn" { "User contains" }
                input type="search" id="f-upn" name="upn" value=(q.upn) autocomplete="off" spellcheck="false";
            }
            div {
                label for="f-event" { "Event" }
                select id="f-event" name="event" {
                    option value="" selected[q.event.trim().is_empty()] { "Any event" }
                    @for e in Event::ALL {
                        option value=(e.as_str()) selected[q.event.trim() == e.as_str()] { (e.as_str()) }
                    }
                }
            }
            div {
                label for="f-actor" { "Actor contains" }
                input type="search" id="f-actor" name="actor" value=(q.actor) autocomplete="off"
                    spellcheck="false" placeholder="admin:, device:, system";
            }
            div {
                label for="f-text" { "Outcome, device or request contains" }
                input type="search" id="f-text" name="text" value=(q.text) autocomplete="off" spellcheck="false";
            }
            div {
                label for="f-since" { "From (UTC)" }
                input type="date" id="f-since" name="since" value=(q.since);
            }
            div {
                label for="f-until" { "Before (UTC)" }
                input type="date" id="f-until" name="until" value=(q.until);
            }
            div.actions { button type="submit" id="filter" { "Filter" } a href=(AUDIT_PATH) { "Clear" } }
        }
        @if let Some(e) = error { (notice(Notice::Error(e))) }
        p.actions {
            a id="export-csv" href=(export("csv")) download="audit.csv" { "Export CSV" }
            a id="export-json" href=(export("json")) download="audit.json" { "Export JSON" }
            span.hint { "(every entry these filters select, up to " (AUDIT_EXPORT_ROWS) ")" }
        }
        @if rows.is_empty() {
            p id="no-entries" { "No entries match these filters." }
        } @else {
            table.stack id="audit" {
                thead { tr {
                    th scope="col" { "#" } th scope="col" { "Time (UTC)" } th scope="col" { "Event" }
                    th scope="col" { "Actor" } th scope="col" { "User" } th scope="col" { "Device" }
                    th scope="col" { "Request" } th scope="col" { "Outcome" }
                } }
                tbody {
                    @for r in &rows {
                        tr {
                            td data-label="#" { (r.seq) }
                            td data-label="Time" {
                                (signin_domain::format::rfc3339(r.at))
                                @if r.repeats > 0 {
                                    " (×" (r.repeats + 1) ", last " (signin_domain::format::rfc3339(r.last_at.unwrap_or(r.at))) ")"
                                }
                            }
                            td data-label="Event" { (r.event) }
                            td data-label="Actor" { (r.actor.as_deref().unwrap_or("(not recorded)")) }
                            td data-label="User" { (r.upn.as_deref().unwrap_or("")) }
                            td data-label="Device" { (r.account_id.as_deref().unwrap_or("")) }
                            td data-label="Request" { (r.request_id.as_deref().unwrap_or("")) }
                            td data-label="Outcome" { (r.outcome) }
                        }
                    }
                }
            }
        }
        nav.pager aria-label="Audit pages" {
            @if has_newer {
                @if let Some(first) = rows.first() {
                    a id="newer" href=(q.link(AUDIT_PATH, &[("after", &first.seq.to_string())])) { "\u{2190} Newer entries" }
                }
            }
            @if has_older {
                @if let Some(last) = rows.last() {
                    a id="older" href=(q.link(AUDIT_PATH, &[("before", &last.seq.to_string())])) { "Older entries \u{2192}" }
                }
            }
        }
    };
    Ok(admin_page(&session, &user, "Audit log", AUDIT_PATH, body))
}

/// `GET /admin/audit/export?format=csv|json&…`: every entry the filters select (up to
/// [`AUDIT_EXPORT_ROWS`], newest first) as a download.
pub async fn audit_export(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<AuditQuery>,
) -> Result<Response, WebError> {
    admin_user(&state, &session).await?;
    let filter = match q.filter(AUDIT_EXPORT_ROWS) {
        Ok(f) => AuditFilter {
            before_seq: None,
            after_seq: None,
            ..f
        },
        Err(e) => {
            return Ok((StatusCode::BAD_REQUEST, e).into_response());
        }
    };
    let rows = signin_domain::store::audit::query(&state.pool, &filter).await?;
    let (content_type, name, body) = match q.format.as_str() {
        "csv" => (
            "text/csv; charset=utf-8",
            "audit.csv",
            audit::to_csv(&rows).map_err(WebError::internal)?,
        ),
        "json" => (
            "application/json",
            "audit.json",
            audit::to_json(&rows).map_err(WebError::internal)?,
        ),
        _ => {
            return Ok((StatusCode::BAD_REQUEST, "format is csv or json").into_response());
        }
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response())
}
