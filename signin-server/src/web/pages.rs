//! The page frame and shared pieces (maud templates: everything interpolated is escaped).
use maud::{html, Markup, DOCTYPE};

use super::{Session, User};

/// Optional notice at the top of a page's content.
#[derive(Debug, Clone, Copy)]
pub enum Notice<'a> {
    None,
    /// Success or progress (`role=status`).
    Info(&'a str),
    /// A problem (`role=alert`).
    Error(&'a str),
}

pub fn notice(n: Notice<'_>) -> Markup {
    html! {
        @match n {
            Notice::None => {},
            Notice::Info(t) => p.notice.info role="status" { (t) },
            Notice::Error(t) => p.notice.error role="alert" { (t) },
        }
    }
}

/// A moment for people: `<time>` with the instant in `datetime` and UTC as its text, which
/// `page.js` rewrites in the viewer's own time zone and language (the server does not know
/// them).
pub fn local_time(ms: i64) -> Markup {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let text = format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute()
    );
    html! {
        time datetime=(signin_domain::format::rfc3339(ms)) data-local { (text) }
    }
}

/// The hidden CSRF field of every POST form.
pub fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf_token()); }
}

/// The whole page: header with navigation, `main` with the content.
pub fn layout(title: &str, user: Option<(&User, &Session)>, content: Markup) -> Markup {
    layout_refreshing(title, user, None, content)
}

/// [`layout`] that goes on to `refresh.1` after `refresh.0` seconds by itself (a meta refresh:
/// a navigation, no script).
pub fn layout_refreshing(
    title: &str,
    user: Option<(&User, &Session)>,
    refresh: Option<(u32, &str)>,
    content: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                @if let Some((secs, to)) = refresh {
                    meta http-equiv="refresh" content=(format!("{secs};url={to}"));
                }
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Phone sign-in" }
                link rel="icon" href=(super::FAVICON_PATH) type="image/svg+xml";
                link rel="stylesheet" href="/assets/style.css";
                script src=(super::PAGE_JS_PATH) defer {}
            }
            body {
                a.skip href="#main" { "Skip to main content" }
                header.top {
                    span.brand { "Phone sign-in" }
                    @if let Some((u, s)) = user {
                        nav aria-label="Main" {
                            ul {
                                li { a href="/me" { "Home" } }
                                li { a href="/me/security-info" { "Security info" } }
                                @if u.is_admin() {
                                    li { a href="/admin/policy" { "Admin" } }
                                }
                                li {
                                    form.inline method="post" action="/signout" {
                                        (csrf(s))
                                        button.link type="submit" { "Sign out" }
                                    }
                                }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" { (content) }
            }
        }
    }
}

/// A page with a heading and one paragraph (errors).
pub fn message_page(title: &str, text: &str) -> Markup {
    layout(
        title,
        None,
        html! {
            section.card {
                h1 { (title) }
                p { (text) }
                p { a href="/signin" { "Go to sign-in" } }
            }
        },
    )
}

/// What an administrator signed in with a password or code alone sees on the admin pages.
pub fn console_needs_phone_page() -> Markup {
    layout(
        "Sign in with your phone",
        None,
        html! {
            section.card {
                h1 { "Sign in with your phone" }
                p id="console-needs-phone" {
                    "The admin console controls everyone\u{2019}s sign-in, so it needs a sign-in with \
                     the Authenticator app (or a temporary access pass from another administrator). \
                     You signed in with a password or a code alone."
                }
                p { a href="/me/security-info" { "Add the Authenticator app on Security info" } }
                p { "Then sign out and sign in again with your phone." }
            }
        },
    )
}

/// The admin section's own navigation.
pub fn admin_nav(current: &str) -> Markup {
    let items = [
        ("/admin/policy", "Authenticator policy"),
        ("/admin/users", "Users"),
        ("/admin/groups", "Groups"),
        ("/admin/audit", "Audit log"),
        ("/admin/apps", "Applications"),
        ("/admin/devices", "Devices"),
    ];
    html! {
        nav.subnav aria-label="Administration" {
            ul {
                @for (href, label) in items {
                    li {
                        @if href == current {
                            a href=(href) aria-current="page" { (label) }
                        } @else {
                            a href=(href) { (label) }
                        }
                    }
                }
            }
        }
    }
}
