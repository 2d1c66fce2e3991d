//! A new device (issue 11, PROTOCOL.md §5.8): the user's other devices are asked "was this
//! you?" by a signed `new_device` request naming it. Behind the policy switch the new device
//! gets no sign-ins until one of them approves it; a denial or a report removes it.
mod support;

use authenticator_protocol::sign_in::{Decision, RequestDetails, RequestKind};
use axum::http::StatusCode;
use serde_json::json;
use signin_domain::accounts;
use signin_domain::rules::policy::PolicyUpdate;
use support::{harness, respond_uri, Harness, Phone};

const BOB: &str = "bob@contoso.test";

async fn set_approval(h: &Harness, on: bool) {
    accounts::set_policy(
        &h.state.pool,
        &PolicyUpdate {
            new_device_approval: Some(on),
            ..Default::default()
        },
    )
    .await
    .unwrap();
}

/// A second phone for Bob (push only).
async fn enroll_another(h: &Harness) -> Phone {
    let mut phone = Phone::new();
    phone.enroll(h, &h.link(BOB, 600).await).await;
    phone
}

/// The requests waiting for `phone`.
async fn waiting(h: &Harness, phone: &Phone) -> Vec<String> {
    let r = phone.poll(h, 0).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body["pushes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["rid"].as_str().unwrap().to_owned())
        .collect()
}

/// The one `new_device` request waiting for `phone`: its id and signed details.
async fn new_device_request(h: &Harness, phone: &Phone) -> (String, RequestDetails) {
    let ids = waiting(h, phone).await;
    assert_eq!(ids.len(), 1, "{ids:?}");
    let f = phone.fetch(h, &ids[0]).await.unwrap();
    let details: RequestDetails = serde_json::from_str(&f.signed.details).unwrap();
    (ids[0].clone(), details)
}

async fn answer(h: &Harness, phone: &Phone, id: &str, decision: Decision) -> serde_json::Value {
    let f = phone.fetch(h, id).await.unwrap();
    h.post(&respond_uri(id), phone.answer(&f, decision, None))
        .await
        .body
}

async fn audit(h: &Harness, event: &str) -> Vec<String> {
    signin_domain::audit::list(&h.state.pool)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.event == event)
        .map(|r| r.outcome)
        .collect()
}

#[tokio::test]
async fn the_other_devices_are_asked_about_a_new_one_which_works_at_once_without_the_switch() {
    let mut h = harness().await;
    h.new_device_notices = true;
    let first = h.ready_phone(BOB).await;
    // The first device is nobody's news.
    assert!(waiting(&h, &first).await.is_empty());
    let second = enroll_another(&h).await;
    let (id, details) = new_device_request(&h, &first).await;
    assert_eq!(details.kind, RequestKind::NewDevice);
    assert_eq!(details.device_name.as_deref(), Some("Test Phone"));
    assert!(!details.number_matching);
    assert_eq!(details.upn, BOB);
    // The new device is not asked about itself, and already gets sign-ins.
    assert!(waiting(&h, &second).await.is_empty());
    let started = h.start_signin(BOB).await;
    assert_eq!(started.status, StatusCode::OK);
    assert_eq!(
        answer(&h, &first, &id, Decision::Approve).await,
        json!({"status": "approved"})
    );
    assert!(
        audit(&h, "device_approved").await.is_empty(),
        "nothing to activate"
    );
}

#[tokio::test]
async fn with_the_switch_a_new_device_gets_no_sign_ins_until_another_approves_it() {
    let mut h = harness().await;
    h.new_device_notices = true;
    set_approval(&h, true).await;
    // A first device never waits.
    let first = h.ready_phone(BOB).await;
    let second = enroll_another(&h).await;
    let devices = signin_domain::store::devices::of_user(&h.state.pool, BOB)
        .await
        .unwrap();
    assert!(!devices[0].awaiting_approval);
    assert!(devices[1].awaiting_approval);
    let listed = accounts::devices::list(&h.state.pool, BOB).await.unwrap();
    assert!(listed[1].contains("AWAITING APPROVAL"), "{listed:?}");
    assert!(!listed[0].contains("AWAITING"));
    let (id, _) = new_device_request(&h, &first).await;
    // A sign-in goes to the first phone only.
    let for_push = || async {
        signin_domain::store::devices::accounts_for_sign_in(&h.state.pool, BOB, RequestKind::Push)
            .await
            .unwrap()
    };
    assert_eq!(for_push().await, [first.account().as_str()]);
    assert!(waiting(&h, &second).await.is_empty());

    assert_eq!(
        answer(&h, &first, &id, Decision::Approve).await,
        json!({"status": "approved"})
    );
    assert_eq!(audit(&h, "device_approved").await, ["ok"]);
    assert_eq!(for_push().await.len(), 2, "approved: it gets sign-ins");
    assert!(
        !signin_domain::store::devices::of_user(&h.state.pool, BOB)
            .await
            .unwrap()[1]
            .awaiting_approval
    );
}

#[tokio::test]
async fn a_denied_or_reported_new_device_is_removed_at_once() {
    for decision in [Decision::Deny, Decision::Report] {
        let mut h = harness().await;
        h.new_device_notices = true;
        set_approval(&h, true).await;
        let first = h.ready_phone(BOB).await;
        let intruder = enroll_another(&h).await;
        let (id, _) = new_device_request(&h, &first).await;
        let status = answer(&h, &first, &id, decision).await;
        assert_eq!(
            status["status"],
            if decision == Decision::Deny {
                "denied"
            } else {
                "reported"
            }
        );
        // Removed: its calls are refused, the user has one device again.
        assert_ne!(intruder.poll(&h, 0).await.status, StatusCode::OK);
        assert_eq!(
            signin_domain::store::devices::of_user(&h.state.pool, BOB)
                .await
                .unwrap()
                .len(),
            1,
            "{decision:?}"
        );
        assert_eq!(
            audit(&h, "device_removed").await,
            ["by_other_device"],
            "{decision:?}"
        );
    }
}
