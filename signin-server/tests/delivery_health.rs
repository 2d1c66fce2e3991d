//! Delivery health (PROTOCOL.md §5.10) on the pages: each device's "last push delivered" and
//! "last seen", on the user's security-info page and on the admin's devices page; a push
//! channel the push service called invalid says so until the phone rotates its token.
mod endpoints;
mod support;

use authenticator_protocol::push_registration::{PushRegistrationUpdate, PUSH_REGISTRATION_PATH};
use authenticator_protocol::UnixMillis;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use endpoints::*;
use signin_domain::accounts::{self, passwords};
use support::*;

const PASSWORD: &str = "a long password 1";
const ADA: &str = "ada@contoso.test";
const NOT_VALID: &str = "push token no longer valid";

/// A browser with one cookie.
struct Browser<'h> {
    h: &'h Harness,
    cookie: Option<String>,
}

impl Browser<'_> {
    async fn send(&mut self, mut req: Request<Body>) -> Reply {
        req.headers_mut()
            .insert("host", "127.0.0.1:8080".parse().unwrap());
        if let Some(c) = &self.cookie {
            req.headers_mut().insert("cookie", c.parse().unwrap());
        }
        let r = self.h.send(req).await;
        if let Some(set) = r.headers.get("set-cookie") {
            let set = set.to_str().unwrap();
            self.cookie = Some(set.split(';').next().unwrap().to_owned());
        }
        r
    }

    async fn get(&mut self, uri: &str) -> String {
        let r = self
            .send(Request::get(uri).body(Body::empty()).unwrap())
            .await;
        assert_eq!(r.status, StatusCode::OK, "{uri}");
        r.body.as_str().unwrap().to_owned()
    }

    async fn post(&mut self, uri: &str, pairs: &[(&str, &str)]) -> Reply {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        self.send(
            Request::post(uri)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    }

    /// Signs in with a temporary access pass (no phone yet): the admin console refuses a
    /// password alone (issue 22, item 7).
    async fn sign_in(&mut self, upn: &str) {
        let pass = accounts::temporary_pass::issue(&self.h.state.pool, upn, 600)
            .await
            .unwrap();
        let page = self.get("/signin").await;
        let r = self
            .post("/signin", &[("csrf", &csrf_of(&page)), ("upn", upn)])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let page = self.get("/signin/pass").await;
        let r = self
            .post(
                "/signin/pass",
                &[("csrf", &csrf_of(&page)), ("pass", &pass)],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{:?}", r.body);
    }
}

fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let at = html.find(marker).expect("a CSRF field") + marker.len();
    html[at..].split('"').next().unwrap().to_owned()
}

/// The text of the cell of class `class` in the row of `account_id`.
fn cell(html: &str, account_id: &str, class: &str) -> String {
    let row = &html[html
        .find(&format!("data-account=\"{account_id}\""))
        .expect("the device's row")..];
    let row = &row[..row.find("</tr>").unwrap()];
    // `<td class="{class}" data-label="…">`
    let marker = format!("<td class=\"{class}\"");
    let at = row.find(&marker).expect("the cell");
    let at = at + row[at..].find('>').unwrap() + 1;
    row[at..row[at..].find("</td>").unwrap() + at].to_owned()
}

async fn health(h: &Harness, phone: &Phone) -> (Option<i64>, Option<i64>) {
    sqlx::query_as("SELECT last_push_at, last_seen_at FROM devices WHERE account_id = $1")
        .bind(phone.account().as_str())
        .fetch_one(&h.state.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_user_and_the_admin_see_when_a_push_was_last_delivered_and_the_phone_last_seen() {
    let dir = tempfile::tempdir().unwrap();
    let fcm = Fcm::start(dir.path()).await;
    let h = push_harness(None, Some(&fcm), fast_retry(1), generous()).await;
    h.add_user(ADA, &["admins"]).await;
    passwords::set_password(&h.state.pool, ADA, PASSWORD)
        .await
        .unwrap();
    // Signed in before the phone exists: the password alone (mode any).
    let mut ada = Browser {
        h: &h,
        cookie: None,
    };
    ada.sign_in(ADA).await;
    let mut phone = Phone::new();
    phone.push_kind = "fcm".into();
    phone.push_token = "fcm-old".into();
    phone.enroll(&h, &h.link(ADA, 600).await).await;
    let r = phone.enable_passwordless(&h).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let id = phone.account().as_str().to_owned();

    let page = ada.get("/me/security-info").await;
    assert_eq!(cell(&page, &id, "last-push"), "Never");

    // A push is delivered and the phone polls: both are recorded and shown, to the user and
    // to the admin.
    h.start_signin(ADA).await;
    h.state.dispatcher.wait_idle().await;
    assert_eq!(phone.poll(&h, 0).await.status, StatusCode::OK);
    let (Some(pushed), Some(seen)) = health(&h, &phone).await else {
        panic!("health not recorded");
    };
    for uri in ["/me/security-info", "/admin/devices"] {
        let page = ada.get(uri).await;
        // Shown as `<time datetime="…">` in the viewer's time zone.
        let shown = |at: i64| format!("datetime=\"{}\"", signin_domain::format::rfc3339(at));
        let last_push = cell(&page, &id, "last-push");
        assert!(last_push.contains(&shown(pushed)), "{uri}: {last_push}");
        let last_seen = cell(&page, &id, "last-seen");
        assert!(last_seen.contains(&shown(seen)), "{uri}: {last_seen}");
    }

    // The token dies (a restore): the pages say so ...
    fcm.unregister("fcm-old");
    h.start_signin(ADA).await;
    h.state.dispatcher.wait_idle().await;
    for uri in ["/me/security-info", "/admin/devices"] {
        assert!(
            cell(&ada.get(uri).await, &id, "last-push").contains(NOT_VALID),
            "{uri}"
        );
    }
    // ... until the phone registers its new token.
    let update = PushRegistrationUpdate {
        account_id: phone.account().clone(),
        push_kind: "fcm".into(),
        push_token: "fcm-new".into(),
        timestamp: UnixMillis::now(),
    };
    let body = update.to_wire(&phone.device.sign(&update.signed_bytes()));
    let r = h
        .post(PUSH_REGISTRATION_PATH, serde_json::to_value(body).unwrap())
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let page = ada.get("/me/security-info").await;
    assert!(!cell(&page, &id, "last-push").contains(NOT_VALID));
}

#[tokio::test]
async fn a_long_poll_phone_gets_no_pushes_and_the_pages_say_so() {
    let h = harness().await;
    h.add_user(ADA, &["admins"]).await;
    passwords::set_password(&h.state.pool, ADA, PASSWORD)
        .await
        .unwrap();
    let mut ada = Browser {
        h: &h,
        cookie: None,
    };
    ada.sign_in(ADA).await;
    let mut phone = Phone::new();
    phone.enroll(&h, &h.link(ADA, 600).await).await;
    let page = ada.get("/admin/devices").await;
    assert_eq!(
        cell(&page, phone.account().as_str(), "last-push"),
        "No push channel"
    );
}
