//! Device lifecycle end to end (issue 11), a real server on a loopback port and phones on
//! authenticator-core: removing the account on the phone removes the device on the server.
use e2e::{TestPhone, TestServer};

const BOBBY: &str = "bobby@contoso.test";

#[tokio::test]
async fn removing_the_account_on_the_phone_removes_the_device_on_the_server() {
    let server = TestServer::start("Contoso").await.unwrap();
    let link = server.user_with_link(BOBBY, "Bobby Smith").await.unwrap();
    let phone = TestPhone::new().unwrap();
    let account = phone.enroll_passwordless(&link).await.unwrap();
    let pool = server.running.pool();
    assert_eq!(
        signin_domain::store::devices::of_user(pool, BOBBY)
            .await
            .unwrap()
            .len(),
        1
    );

    phone
        .core
        .remove_account(account.account_id.clone())
        .await
        .unwrap();

    assert!(phone.core.accounts().await.unwrap().is_empty());
    assert!(
        signin_domain::store::devices::of_user(pool, BOBBY)
            .await
            .unwrap()
            .is_empty(),
        "the server forgot the device"
    );
    let removed: Vec<_> = signin_domain::audit::list(pool)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.event == "device_removed")
        .collect();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].outcome, "by_device");
    assert_eq!(
        removed[0].account_id.as_deref(),
        Some(account.account_id.as_str())
    );
    // No phone left: a sign-in has nowhere to go.
    let refused = server.start_sign_in_raw(BOBBY).await.unwrap();
    assert!(refused["id"].is_null(), "{refused}");
}

#[tokio::test]
async fn the_first_phone_is_asked_about_a_second_and_denying_removes_it() {
    use authenticator_core::{Decision, RequestKind};
    let server = TestServer::start("Contoso").await.unwrap();
    let link = server.user_with_link(BOBBY, "Bobby Smith").await.unwrap();
    let first = TestPhone::new().unwrap();
    first.enroll_passwordless(&link).await.unwrap();
    let intruder = TestPhone::new().unwrap();
    let stolen = intruder
        .enroll_passwordless(&server.link(BOBBY).await.unwrap())
        .await
        .unwrap();

    // The first phone is asked, with the new device's name; the intruder is not.
    let asked = first.core.poll(10).await.unwrap();
    assert_eq!(asked.len(), 1, "{asked:?}");
    let notice = &asked[0];
    assert_eq!(notice.kind, RequestKind::NewDevice);
    assert_eq!(notice.device_name.as_deref(), Some("Test phone"));
    assert!(!notice.number_matching);
    assert!(intruder.core.poll(0).await.unwrap().is_empty());

    // "No, that wasn't me": the new device is removed on the server at once.
    assert_eq!(
        first
            .core
            .deny(notice.account_id.clone(), notice.request_id.clone())
            .await
            .unwrap(),
        Decision::Denied
    );
    let left = signin_domain::store::devices::of_user(server.running.pool(), BOBBY)
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_ne!(left[0].account_id, stolen.account_id);
    assert!(
        intruder.core.poll(0).await.is_err(),
        "the intruder is refused"
    );
}

/// A device removed by an admin while a sign-in waits on it: its answer is refused at once,
/// with the right number and the user's verification, and the sign-in is not approved.
#[tokio::test]
async fn a_removed_device_cannot_answer_the_request_it_already_holds() {
    let server = TestServer::start("Contoso").await.unwrap();
    let link = server.user_with_link(BOBBY, "Bobby Smith").await.unwrap();
    let phone = TestPhone::new().unwrap();
    let account = phone.enroll_passwordless(&link).await.unwrap();
    let (id, number) = server.start_sign_in(BOBBY).await.unwrap();
    let pending = phone.core.poll(5).await.unwrap();
    assert!(
        pending.iter().any(|r| r.request_id == id),
        "the request reached the phone"
    );

    signin_domain::accounts::devices::remove(server.running.pool(), &account.account_id)
        .await
        .unwrap();
    let refused = phone
        .core
        .approve(account.account_id.clone(), id.clone(), number)
        .await;
    assert!(
        matches!(
            refused,
            Err(
                // The server no longer knows the request for this device: "not your request"
                // (its 404 `unknown_request` is one error with the device's own).
                authenticator_core::AuthenticatorError::UnknownRequest
                    | authenticator_core::AuthenticatorError::NotEnrolled
            )
        ),
        "{refused:?}"
    );
    // The request went with the device (its only one): the page learns the sign-in is gone.
    let page: serde_json::Value = server
        .browser
        .get(format!("{}api/v1/signin/{id}", server.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["error"], "unknown_request", "{page}");
}
