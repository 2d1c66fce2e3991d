//! The Authenticator policy: who may use it, in which mode, and what the phone shows.
use std::fmt;

use authenticator_protocol::number::NUMBER_DIGITS;

use crate::store::policy::PolicyRow;
use crate::store::{self, Pool, StoreResult};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    All,
    Group(String),
}

impl Target {
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        match text {
            "all" => Ok(Target::All),
            _ => match text.strip_prefix("group:") {
                Some(g) if !g.trim().is_empty() => {
                    // A group name is shown like every other name: the one gate for names.
                    authenticator_protocol::text::check_plain(g.trim())
                        .map_err(PolicyError::UnsafeGroup)?;
                    Ok(Target::Group(g.trim().to_owned()))
                }
                _ => Err(PolicyError::BadTarget),
            },
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::All => f.write_str("all"),
            Target::Group(g) => write!(f, "group:{g}"),
        }
    }
}

/// Whom an additional-context feature (application name, location) is for, among the users
/// the policy targets: everyone or one group, less the excluded groups (as Entra targets each
/// feature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub include: Target,
    pub exclude: Vec<String>,
}

impl Default for Scope {
    fn default() -> Self {
        Scope {
            include: Target::All,
            exclude: Vec::new(),
        }
    }
}

impl Scope {
    /// Whether a user in `groups` is in the scope.
    pub fn covers(&self, groups: &[String]) -> bool {
        let included = match &self.include {
            Target::All => true,
            Target::Group(g) => groups.iter().any(|m| m == g),
        };
        included && !groups.iter().any(|m| self.exclude.contains(m))
    }

    /// Every group the scope names.
    fn groups(&self) -> impl Iterator<Item = &String> {
        let include = match &self.include {
            Target::Group(g) => Some(g),
            Target::All => None,
        };
        include.into_iter().chain(&self.exclude)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Any,
    Push,
    Passwordless,
}

impl Mode {
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        match text {
            "any" => Ok(Mode::Any),
            "push" => Ok(Mode::Push),
            "passwordless" => Ok(Mode::Passwordless),
            _ => Err(PolicyError::BadMode),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Any => "any",
            Mode::Push => "push",
            Mode::Passwordless => "passwordless",
        }
    }
    /// Whether phone sign-in (passwordless) is allowed in this mode.
    pub fn allows_passwordless(self) -> bool {
        matches!(self, Mode::Any | Mode::Passwordless)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub enabled: bool,
    pub target: Target,
    pub mode: Mode,
    pub number_matching: bool,
    pub show_app_name: bool,
    pub show_location: bool,
    /// Digits of the sign-in number (2 to 6); a user's elevated risk raises it for their
    /// sign-ins (`risk::number_digits`).
    pub number_length: u8,
    /// A device enrolled for a user who already has one waits until one of the others
    /// approves it (PROTOCOL.md §5.8); off: they are only told.
    pub new_device_approval: bool,
    /// Sign-ins started on the sign-in pages are bound to the browser showing them (PROTOCOL.md
    /// §5.9): only the Authenticator on that device, having seen the page at the server's
    /// own origin, can approve them. Stops a relaying (real-time phishing) proxy.
    pub phishing_resistant: bool,
    /// Groups left out even when the target includes them (Entra's "exclude"): their members
    /// are treated as users the policy does not target.
    pub exclude: Vec<String>,
    /// Whom `show_app_name` is for (when on).
    pub app_name_scope: Scope,
    /// Whom `show_location` is for (when on).
    pub location_scope: Scope,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("target must be `all` or `group:<name>`")]
    BadTarget,
    #[error("mode must be `any`, `push` or `passwordless`")]
    BadMode,
    #[error("number matching cannot be switched off when mode is passwordless")]
    NumberMatchingRequired,
    #[error("the number length must be 2 to 6 digits")]
    BadNumberLength,
    #[error("the target group {0}")]
    UnsafeGroup(authenticator_protocol::text::UnsafeText),
    /// The target names a group nobody is in (a group exists while it has members): a typo
    /// would otherwise leave every user out.
    #[error("there is no group {0:?} (a group exists while it has members)")]
    UnknownGroup(String),
    /// Phishing-resistant sign-in binds approvals to the server's own origin: without the
    /// configured public URL every sign-in on the pages would be refused.
    #[error("phishing-resistant sign-in needs the server's public URL (serve --public-url)")]
    NeedsPublicUrl,
}

/// Changes requested by `admin policy set`; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct PolicyUpdate {
    pub enabled: Option<bool>,
    pub target: Option<Target>,
    pub mode: Option<Mode>,
    pub number_matching: Option<bool>,
    pub show_app_name: Option<bool>,
    pub show_location: Option<bool>,
    pub number_length: Option<u8>,
    pub new_device_approval: Option<bool>,
    pub phishing_resistant: Option<bool>,
    /// The excluded groups, all of them (an empty list: none).
    pub exclude: Option<Vec<String>>,
    pub app_name_target: Option<Target>,
    pub app_name_exclude: Option<Vec<String>>,
    pub location_target: Option<Target>,
    pub location_exclude: Option<Vec<String>>,
}

impl Policy {
    pub fn apply(&self, u: &PolicyUpdate) -> Result<Policy, PolicyError> {
        let next = Policy {
            enabled: u.enabled.unwrap_or(self.enabled),
            target: u.target.clone().unwrap_or_else(|| self.target.clone()),
            mode: u.mode.unwrap_or(self.mode),
            number_matching: u.number_matching.unwrap_or(self.number_matching),
            show_app_name: u.show_app_name.unwrap_or(self.show_app_name),
            show_location: u.show_location.unwrap_or(self.show_location),
            number_length: u.number_length.unwrap_or(self.number_length),
            new_device_approval: u.new_device_approval.unwrap_or(self.new_device_approval),
            phishing_resistant: u.phishing_resistant.unwrap_or(self.phishing_resistant),
            exclude: match &u.exclude {
                Some(groups) => exclude_list(groups)?,
                None => self.exclude.clone(),
            },
            app_name_scope: Scope {
                include: u
                    .app_name_target
                    .clone()
                    .unwrap_or_else(|| self.app_name_scope.include.clone()),
                exclude: match &u.app_name_exclude {
                    Some(groups) => exclude_list(groups)?,
                    None => self.app_name_scope.exclude.clone(),
                },
            },
            location_scope: Scope {
                include: u
                    .location_target
                    .clone()
                    .unwrap_or_else(|| self.location_scope.include.clone()),
                exclude: match &u.location_exclude {
                    Some(groups) => exclude_list(groups)?,
                    None => self.location_scope.exclude.clone(),
                },
            },
        };
        if next.mode == Mode::Passwordless && !next.number_matching {
            return Err(PolicyError::NumberMatchingRequired);
        }
        if !NUMBER_DIGITS.contains(&next.number_length) {
            return Err(PolicyError::BadNumberLength);
        }
        Ok(next)
    }

    /// Every setting that differs from `self` in `next`, as `name: before → after` (the
    /// names of `admin policy show`), in the order of the policy page: what the audit log
    /// records of a change.
    pub fn changes_to(&self, next: &Policy) -> Vec<String> {
        let before = self.to_string();
        let after = next.to_string();
        before
            .lines()
            .zip(after.lines())
            .filter(|(b, a)| b != a)
            .filter_map(|(b, a)| {
                let (name, was) = b.split_once(": ")?;
                let (_, now) = a.split_once(": ")?;
                Some(format!("{name}: {was} \u{2192} {now}"))
            })
            .collect()
    }

    /// Whether the policy lets a user in `groups` approve a push as a second factor after a
    /// password (modes `any` and `push`).
    pub fn allows_push_for(&self, groups: &[String]) -> bool {
        self.enabled && matches!(self.mode, Mode::Any | Mode::Push) && self.targets(groups)
    }

    /// Whether a password alone may sign a user in `groups` in, given whether they have a
    /// phone with phone sign-in. Fails closed: where the policy requires the Authenticator
    /// (modes `push` and `passwordless`) never, whatever the user has registered, so a
    /// stolen password cannot sign in and register a phone (a first phone comes from an
    /// admin-issued registration link or temporary access pass). In mode `any`, the
    /// bootstrap mode, only users without phone sign-in.
    pub fn allows_password_alone_for(&self, groups: &[String], has_phone_sign_in: bool) -> bool {
        if !self.enabled || !self.targets(groups) {
            return true;
        }
        match self.mode {
            Mode::Push | Mode::Passwordless => false,
            Mode::Any => !has_phone_sign_in,
        }
    }

    /// Whether a user in `groups` is in the target and in no excluded group.
    fn targets(&self, groups: &[String]) -> bool {
        Scope {
            include: self.target.clone(),
            exclude: self.exclude.clone(),
        }
        .covers(groups)
    }

    /// Whether the phone shows the application's name to a user in `groups`.
    pub fn shows_app_name_to(&self, groups: &[String]) -> bool {
        self.show_app_name && self.app_name_scope.covers(groups)
    }

    /// Whether the phone shows the sign-in's location to a user in `groups`.
    pub fn shows_location_to(&self, groups: &[String]) -> bool {
        self.show_location && self.location_scope.covers(groups)
    }

    /// Whether the policy lets a user in `groups` use phone sign-in.
    pub fn allows_passwordless_for(&self, groups: &[String]) -> bool {
        self.enabled && self.mode.allows_passwordless() && self.targets(groups)
    }
}

/// The excluded groups as given: trimmed, empty ones dropped, each once, each through the one
/// gate for names.
fn exclude_list(groups: &[String]) -> Result<Vec<String>, PolicyError> {
    let mut list: Vec<String> = Vec::new();
    for g in groups.iter().map(|g| g.trim()).filter(|g| !g.is_empty()) {
        authenticator_protocol::text::check_plain(g).map_err(PolicyError::UnsafeGroup)?;
        if !list.iter().any(|l| l == g) {
            list.push(g.to_owned());
        }
    }
    Ok(list)
}

/// A list of groups as `admin policy show` prints it.
fn groups_text(groups: &[String]) -> String {
    if groups.is_empty() {
        "(none)".to_owned()
    } else {
        groups.join(", ")
    }
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "enabled: {}", self.enabled)?;
        writeln!(f, "target: {}", self.target)?;
        writeln!(f, "exclude: {}", groups_text(&self.exclude))?;
        writeln!(f, "mode: {}", self.mode.as_str())?;
        writeln!(f, "number-matching: {}", on_off(self.number_matching))?;
        writeln!(f, "show-app-name: {}", on_off(self.show_app_name))?;
        writeln!(f, "show-app-name-to: {}", self.app_name_scope.include)?;
        writeln!(
            f,
            "show-app-name-except: {}",
            groups_text(&self.app_name_scope.exclude)
        )?;
        writeln!(f, "show-location: {}", on_off(self.show_location))?;
        writeln!(f, "show-location-to: {}", self.location_scope.include)?;
        writeln!(
            f,
            "show-location-except: {}",
            groups_text(&self.location_scope.exclude)
        )?;
        writeln!(f, "number-length: {}", self.number_length)?;
        writeln!(
            f,
            "new-device-approval: {}",
            on_off(self.new_device_approval)
        )?;
        write!(f, "phishing-resistant: {}", on_off(self.phishing_resistant))
    }
}

/// Whether `next` can work with what is set up: its target group and every excluded group
/// have members, and phishing-resistant sign-in has the server's public URL. The admin page
/// checks it before saving (`admin policy set` does not: the command line may set the policy
/// up first).
pub async fn check_setup(pool: &Pool, next: &Policy) -> StoreResult<Result<(), PolicyError>> {
    let named = match &next.target {
        Target::Group(g) => Some(g),
        Target::All => None,
    };
    let memberships = store::users::memberships(pool).await?;
    let every = named
        .into_iter()
        .chain(&next.exclude)
        .chain(next.app_name_scope.groups())
        .chain(next.location_scope.groups());
    for g in every {
        if !memberships.iter().any(|(_, group)| group == g) {
            return Ok(Err(PolicyError::UnknownGroup(g.clone())));
        }
    }
    if next.phishing_resistant
        && store::get_setting(pool, store::PUBLIC_URL_SETTING)
            .await?
            .is_none()
    {
        return Ok(Err(PolicyError::NeedsPublicUrl));
    }
    Ok(Ok(()))
}

pub async fn load(pool: &Pool) -> anyhow::Result<Policy> {
    from_row(store::policy::load(pool).await?)
}

/// The policy a sign-in start applies: the copy of the generation it read (`store::cache`).
pub async fn load_current(
    pool: &Pool,
    cache: &store::cache::Cache,
    at: &store::cache::Confirmed,
) -> anyhow::Result<Policy> {
    from_row(cache.policy(pool, at).await?)
}

fn from_row(row: PolicyRow) -> anyhow::Result<Policy> {
    Ok(Policy {
        enabled: row.enabled,
        target: Target::parse(&row.target)?,
        mode: Mode::parse(&row.mode)?,
        number_matching: row.number_matching,
        show_app_name: row.show_app_name,
        show_location: row.show_location,
        // Out of range only if the database was edited by hand: the default then.
        number_length: u8::try_from(row.number_length)
            .ok()
            .filter(|d| NUMBER_DIGITS.contains(d))
            .unwrap_or(authenticator_protocol::number::DEFAULT_NUMBER_DIGITS),
        new_device_approval: row.new_device_approval,
        phishing_resistant: row.phishing_resistant,
        exclude: lines(&row.exclude_groups),
        app_name_scope: Scope {
            include: Target::parse(&row.app_name_target)?,
            exclude: lines(&row.app_name_exclude),
        },
        location_scope: Scope {
            include: Target::parse(&row.location_target)?,
            exclude: lines(&row.location_exclude),
        },
    })
}

/// Stored group lists: one name a line.
fn lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect()
}

pub async fn save(pool: &Pool, p: &Policy) -> StoreResult<()> {
    store::policy::save(
        pool,
        &PolicyRow {
            enabled: p.enabled,
            target: p.target.to_string(),
            mode: p.mode.as_str().to_owned(),
            number_matching: p.number_matching,
            show_app_name: p.show_app_name,
            show_location: p.show_location,
            number_length: i64::from(p.number_length),
            new_device_approval: p.new_device_approval,
            phishing_resistant: p.phishing_resistant,
            exclude_groups: p.exclude.join("\n"),
            app_name_target: p.app_name_scope.include.to_string(),
            app_name_exclude: p.app_name_scope.exclude.join("\n"),
            location_target: p.location_scope.include.to_string(),
            location_exclude: p.location_scope.exclude.join("\n"),
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default() -> Policy {
        Policy {
            enabled: true,
            target: Target::All,
            mode: Mode::Any,
            number_matching: true,
            show_app_name: true,
            show_location: true,
            number_length: 2,
            new_device_approval: false,
            phishing_resistant: false,
            exclude: Vec::new(),
            app_name_scope: Scope::default(),
            location_scope: Scope::default(),
        }
    }

    #[test]
    fn the_number_length_is_two_to_six_digits() {
        let p = default();
        for digits in 2..=6 {
            let update = PolicyUpdate {
                number_length: Some(digits),
                ..Default::default()
            };
            assert_eq!(p.apply(&update).unwrap().number_length, digits);
        }
        for digits in [0, 1, 7, 255] {
            let update = PolicyUpdate {
                number_length: Some(digits),
                ..Default::default()
            };
            assert_eq!(p.apply(&update), Err(PolicyError::BadNumberLength));
        }
        assert!(p.to_string().contains("number-length: 2\n"));
    }

    #[test]
    fn a_change_names_each_setting_that_changed_before_and_after() {
        let p = default();
        let next = p
            .apply(&PolicyUpdate {
                phishing_resistant: Some(true),
                number_length: Some(4),
                new_device_approval: Some(false),
                target: Some(Target::Group("pilot".into())),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            p.changes_to(&next),
            [
                "target: all \u{2192} group:pilot",
                "number-length: 2 \u{2192} 4",
                "phishing-resistant: off \u{2192} on",
            ]
        );
        assert_eq!(
            next.changes_to(&p),
            [
                "target: group:pilot \u{2192} all",
                "number-length: 4 \u{2192} 2",
                "phishing-resistant: on \u{2192} off",
            ]
        );
        assert!(p.changes_to(&p).is_empty());
    }

    #[test]
    fn excluded_groups_are_left_out_of_the_target_and_recorded_as_a_change() {
        let p = default()
            .apply(&PolicyUpdate {
                target: Some(Target::Group("staff".into())),
                mode: Some(Mode::Push),
                exclude: Some(vec![
                    " contractors ".into(),
                    String::new(),
                    "contractors".into(),
                ]),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(p.exclude, ["contractors"], "trimmed, each once");
        let staff = ["staff".to_owned()];
        let both = ["staff".to_owned(), "contractors".to_owned()];
        assert!(p.allows_push_for(&staff));
        assert!(!p.allows_push_for(&both));
        // Targeted in mode push: never a password alone; excluded: not targeted.
        assert!(!p.allows_password_alone_for(&staff, false));
        assert!(p.allows_password_alone_for(&both, false));
        let everyone = p
            .apply(&PolicyUpdate {
                target: Some(Target::All),
                mode: Some(Mode::Any),
                ..Default::default()
            })
            .unwrap();
        assert!(everyone.allows_passwordless_for(&staff));
        assert!(!everyone.allows_passwordless_for(&both));
        assert!(everyone.allows_passwordless_for(&[]));
        assert!(p.to_string().contains("exclude: contractors\n"));
        assert!(default()
            .changes_to(&p)
            .contains(&"exclude: (none) \u{2192} contractors".to_owned()));
        let unsafe_name = PolicyUpdate {
            exclude: Some(vec!["a\u{202e}b".into()]),
            ..Default::default()
        };
        assert!(matches!(
            default().apply(&unsafe_name),
            Err(PolicyError::UnsafeGroup(_))
        ));
    }

    #[test]
    fn each_additional_context_feature_has_its_own_groups() {
        let p = default()
            .apply(&PolicyUpdate {
                app_name_target: Some(Target::Group("pilot".into())),
                location_exclude: Some(vec!["kiosks".into()]),
                ..Default::default()
            })
            .unwrap();
        let pilot = ["pilot".to_owned()];
        let kiosk = ["kiosks".to_owned()];
        assert!(p.shows_app_name_to(&pilot));
        assert!(!p.shows_app_name_to(&kiosk));
        assert!(p.shows_location_to(&pilot));
        assert!(!p.shows_location_to(&kiosk));
        // Off is off, whatever the groups.
        let off = p
            .apply(&PolicyUpdate {
                show_app_name: Some(false),
                ..Default::default()
            })
            .unwrap();
        assert!(!off.shows_app_name_to(&pilot));
        let shown = p.to_string();
        assert!(shown.contains("show-app-name-to: group:pilot\n"), "{shown}");
        assert!(shown.contains("show-location-except: kiosks\n"), "{shown}");
        assert_eq!(
            default().changes_to(&p),
            [
                "show-app-name-to: all \u{2192} group:pilot",
                "show-location-except: (none) \u{2192} kiosks",
            ]
        );
    }

    #[test]
    fn passwordless_mode_keeps_number_matching() {
        let p = default();
        let off = PolicyUpdate {
            number_matching: Some(false),
            ..Default::default()
        };
        let p2 = p.apply(&off).unwrap();
        assert!(!p2.number_matching);
        let to_pwl = PolicyUpdate {
            mode: Some(Mode::Passwordless),
            ..Default::default()
        };
        assert_eq!(p2.apply(&to_pwl), Err(PolicyError::NumberMatchingRequired));
        let pwl = p.apply(&to_pwl).unwrap();
        assert_eq!(pwl.apply(&off), Err(PolicyError::NumberMatchingRequired));
    }

    #[test]
    fn push_and_passwordless_modes_refuse_a_password_alone_for_targeted_users() {
        let mut p = default();
        // `any`: only users without phone sign-in (bootstrap).
        assert!(p.allows_password_alone_for(&[], false));
        assert!(!p.allows_password_alone_for(&[], true));
        for mode in [Mode::Push, Mode::Passwordless] {
            p.mode = mode;
            assert!(!p.allows_password_alone_for(&[], false), "{mode:?}");
            assert!(!p.allows_password_alone_for(&[], true), "{mode:?}");
        }
        // Users the policy does not target, or a disabled policy: the password alone.
        p.target = Target::parse("group:pilot").unwrap();
        assert!(p.allows_password_alone_for(&["other".into()], false));
        assert!(!p.allows_password_alone_for(&["pilot".into()], false));
        p.enabled = false;
        assert!(p.allows_password_alone_for(&["pilot".into()], false));
    }

    #[test]
    fn targeting_and_modes() {
        let mut p = default();
        assert!(p.allows_passwordless_for(&[]));
        p.target = Target::parse("group:pilot").unwrap();
        assert!(!p.allows_passwordless_for(&["other".into()]));
        assert!(p.allows_passwordless_for(&["pilot".into()]));
        p.mode = Mode::Push;
        assert!(!p.allows_passwordless_for(&["pilot".into()]));
        p.mode = Mode::Passwordless;
        p.enabled = false;
        assert!(!p.allows_passwordless_for(&["pilot".into()]));
        assert_eq!(Target::parse("group:"), Err(PolicyError::BadTarget));
        assert_eq!(Target::parse("everyone"), Err(PolicyError::BadTarget));
    }
}
