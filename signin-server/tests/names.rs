//! Issue 20, finding 5: one gate for every name a phone or a page shows
//! (`authenticator_protocol::text::check_plain`). Each way a name comes in — a user added by
//! the admin CLI or pages (they call the same domain functions), a group, an application or an
//! OpenID Connect client registered, a policy's target group, a device named at enrollment —
//! refuses an invisible, format, private-use, unassigned or control character with the typed
//! error, naming where it came from and the code point, and stores nothing.
mod support;

use authenticator_protocol::text::{UnsafeKind, UnsafeText};
use axum::http::StatusCode;
use serde_json::json;
use signin_domain::rules::policy::{PolicyError, Target};
use signin_domain::upn::UpnError;
use signin_domain::{accounts, oidc, AppError};
use support::*;

const BOB: &str = "bobby@contoso.test";

/// The code points the review listed: look-alike names on the phone.
const LOOK_ALIKE: [char; 8] = [
    '\u{200B}',
    '\u{200C}',
    '\u{200D}',
    '\u{FEFF}',
    '\u{00AD}',
    '\u{FFF9}',
    '\u{1D173}',
    '\u{E000}',
];

/// The refusal an admin function gave: `AppError::UnsafeText` for `field`, at `c`.
fn refused_for(e: &anyhow::Error, field: &str, c: char) {
    match e.downcast_ref::<AppError>() {
        Some(AppError::UnsafeText { field: f, error }) => {
            assert_eq!((*f, error.character), (field, c), "{e}");
            let kind = UnsafeKind::of(c).unwrap();
            assert_eq!(error.kind, kind);
            assert!(
                e.to_string().contains(&format!("U+{:04X}", u32::from(c))),
                "{e}"
            );
            assert!(
                !e.to_string().contains(c),
                "the message never holds the text: {e}"
            );
        }
        _ => panic!("{field} U+{:04X}: not a typed refusal: {e:?}", u32::from(c)),
    }
}

#[tokio::test]
async fn adding_a_user_with_a_look_alike_name_group_or_upn_is_refused_with_the_typed_error() {
    let h = harness().await;
    let pool = &h.state.pool;
    for c in LOOK_ALIKE {
        let name = format!("Bob{c}by Smith");
        let e = accounts::add_user(pool, BOB, &name, &[]).await.unwrap_err();
        refused_for(&e, "--name", c);
        let e = accounts::add_user(pool, BOB, "Bobby", &[format!("pilot{c}")])
            .await
            .unwrap_err();
        refused_for(&e, "--group", c);
        let e = accounts::add_user(pool, &format!("bob{c}by@contoso.test"), "Bobby", &[])
            .await
            .unwrap_err();
        refused_for(&e, "--upn", c);
        // The stored form of a user name goes through the same gate.
        assert_eq!(
            signin_domain::upn::Upn::parse(&format!("bob{c}by@contoso.test")),
            Err(UpnError::NotPlain(UnsafeText {
                character: c,
                kind: UnsafeKind::of(c).unwrap()
            }))
        );
    }
    assert!(
        signin_domain::store::users::all_upns(pool)
            .await
            .unwrap()
            .is_empty(),
        "nobody was added"
    );
    // A plain name in any script, and a one-code-point emoji, are names.
    accounts::add_user(pool, BOB, "Zoë Łukasiewicz 👪", &["pilot".into()])
        .await
        .unwrap();
    // Adding a member to a group: the group name passes the gate too.
    let e = accounts::add_group_member(pool, "admins\u{200B}", BOB)
        .await
        .unwrap_err();
    refused_for(&e, "--group", '\u{200B}');
    accounts::add_group_member(pool, "admins", BOB)
        .await
        .unwrap();
}

#[tokio::test]
async fn registering_an_application_or_openid_client_with_a_look_alike_name_is_refused_with_the_typed_error(
) {
    let h = harness().await;
    let pool = &h.state.pool;
    let before = accounts::applications::list(pool).await.unwrap().len();
    for c in LOOK_ALIKE {
        let name = format!("Pay{c}roll");
        let e = accounts::applications::add(pool, &name)
            .await
            .err()
            .unwrap();
        refused_for(&e, "--name", c);
        let e = oidc::clients::add(
            pool,
            &name,
            &["https://payroll.example/cb".to_owned()],
            false,
            None,
        )
        .await
        .err()
        .unwrap();
        refused_for(&e, "--name", c);
    }
    assert_eq!(
        accounts::applications::list(pool).await.unwrap().len(),
        before,
        "nothing was registered"
    );
    accounts::applications::add(pool, "Payroll").await.unwrap();
}

#[test]
fn a_policy_target_group_with_a_look_alike_name_is_refused_with_the_typed_error() {
    for c in LOOK_ALIKE {
        match Target::parse(&format!("group:pilot{c}")) {
            Err(PolicyError::UnsafeGroup(e)) => assert_eq!(e.character, c),
            other => panic!("U+{:04X}: {other:?}", u32::from(c)),
        }
    }
    assert_eq!(
        Target::parse("group:pilot"),
        Ok(Target::Group("pilot".into()))
    );
}

/// Over HTTP: 400 `invalid_request` whose message names `device_name` and the code point. The
/// code stays unused, so the same phone then enrolls with a plain name.
#[tokio::test]
async fn a_device_name_with_a_look_alike_character_is_refused_at_enrollment() {
    let h = harness().await;
    h.add_user(BOB, &[]).await;
    let link = h.link(BOB, 600).await;
    let mut phone = Phone::new();
    let c = phone.challenge(&h, &link).await.unwrap();
    for ch in LOOK_ALIKE
        .into_iter()
        .chain(['\u{0378}', '\u{FFFE}', '\u{2028}'])
    {
        let mut body = phone.complete_body(&link.code, c);
        body["device_name"] = json!(format!("Pixel{ch} 9"));
        let r = h.post("/api/v1/enroll/complete", body).await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "U+{:04X}",
            u32::from(ch)
        );
        let message = r.body["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("device_name holds U+{:04X}", u32::from(ch))),
            "{message}"
        );
    }
    // The domain's typed error, as the handler gets it.
    let mut body = phone.complete_body(&link.code, c);
    body["device_name"] = json!("Pixel\u{200B}");
    let body: authenticator_protocol::wire::EnrollCompleteRequest =
        serde_json::from_value(body).unwrap();
    match signin_domain::enrollment::complete(&h.state, &body).await {
        Err(AppError::UnsafeText { field, error }) => {
            assert_eq!((field, error.code_point()), ("device_name", 0x200B))
        }
        other => panic!("{:?}", other.map(|_| "enrolled")),
    }
    let r = h
        .post(
            "/api/v1/enroll/complete",
            phone.complete_body(&link.code, c),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}
