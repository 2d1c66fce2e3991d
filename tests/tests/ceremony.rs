//! End to end: a real sign-in server on a loopback port (real SQLite file), phones built on
//! authenticator-core, the browser side of the sign-in page. Each test names the behaviour.
use std::time::Duration;

use authenticator_core::testing::{CountingVerifier, RecordingKeyStore};
use authenticator_core::{
    AccountSummary, AuthenticatorError, Decision, PlatformError, VerificationOutcome,
};
use e2e::proxy::RecordingProxy;
use e2e::raw_device::{details_text, RawDevice};
use e2e::{TestPhone, TestServer};

const BOBBY: &str = "bobby@contoso.test";

/// Server + one phone enrolled for Bobby with phone sign-in enabled.
async fn bobby() -> (TestServer, TestPhone, String) {
    let server = TestServer::start("Contoso").await.unwrap();
    let link = server.user_with_link(BOBBY, "Bobby Smith").await.unwrap();
    let phone = TestPhone::new().unwrap();
    let account = phone.enroll_passwordless(&link).await.unwrap();
    assert!(account.phone_sign_in_enabled);
    (server, phone, account.account_id)
}

/// Like `bobby`, but the phone talks to the server through a recording proxy: the network
/// attacker's view (the registration link names the proxy as the server).
async fn bobby_behind_proxy() -> (TestServer, RecordingProxy, TestPhone, AccountSummary) {
    let server = TestServer::start("Contoso").await.unwrap();
    let proxy = RecordingProxy::start(&server.base_url).await.unwrap();
    let link = server
        .user_with_link_naming(BOBBY, "Bobby Smith", &proxy.base_url)
        .await
        .unwrap();
    let phone = TestPhone::new().unwrap();
    let account = phone.enroll_passwordless(&link).await.unwrap();
    (server, proxy, phone, account)
}

/// Starts a sign-in and lets the phone receive it by long-poll. Returns (page id, number, request id).
async fn sign_in(server: &TestServer, phone: &TestPhone, upn: &str) -> (String, String, String) {
    let (id, number) = server.start_sign_in(upn).await.unwrap();
    assert_eq!(number.len(), 2);
    let pending = phone.core.poll(10).await.unwrap();
    let request = pending
        .into_iter()
        .find(|r| r.upn == upn)
        .expect("the request reached the phone");
    (id, number, request.request_id)
}

fn wrong(number: &str) -> String {
    format!("{:02}", (number.parse::<u32>().unwrap() + 1) % 100)
}

#[tokio::test]
async fn approve_with_the_right_number_signs_the_page_in() {
    let (server, phone, account_id) = bobby().await;
    let (id, number) = server.start_sign_in(BOBBY).await.unwrap();
    assert_eq!(server.status(&id).await.unwrap(), "pending");

    let pending = phone.core.poll(10).await.unwrap();
    assert_eq!(pending.len(), 1);
    let request = &pending[0];
    assert_eq!(request.account_id, account_id);
    assert_eq!(request.app_name.as_deref(), Some("My Apps"));
    assert_eq!(request.location.as_deref(), Some("Unknown location"));
    assert_eq!(request.server_name, "Contoso");
    assert!(request.number_matching);

    let decision = phone
        .core
        .approve(
            request.account_id.clone(),
            request.request_id.clone(),
            number,
        )
        .await
        .unwrap();
    assert_eq!(decision, Decision::Approved);
    assert_eq!(server.status(&id).await.unwrap(), "approved");
}

#[tokio::test]
async fn wrong_number_is_refused_and_three_fail_the_request() {
    let (server, phone, _) = bobby().await;
    let (id, number, request_id) = sign_in(&server, &phone, BOBBY).await;
    let bad = wrong(&number);

    let first = phone.approve(request_id.clone(), bad.clone()).await;
    assert!(
        matches!(
            first,
            Err(AuthenticatorError::WrongNumber { attempts_left: 2 })
        ),
        "{first:?}"
    );
    assert_eq!(server.status(&id).await.unwrap(), "pending");
    let second = phone.approve(request_id.clone(), bad.clone()).await;
    assert!(
        matches!(
            second,
            Err(AuthenticatorError::WrongNumber { attempts_left: 1 })
        ),
        "{second:?}"
    );
    let third = phone.approve(request_id.clone(), bad).await;
    assert!(
        matches!(third, Err(AuthenticatorError::RequestFailed)),
        "{third:?}"
    );
    assert_eq!(server.status(&id).await.unwrap(), "failed");

    // Even the right number cannot revive a failed request.
    let late = phone.approve(request_id, number).await;
    assert!(late.is_err(), "{late:?}");
    assert_eq!(server.status(&id).await.unwrap(), "failed");
}

#[tokio::test]
async fn a_wrong_number_can_be_corrected() {
    let (server, phone, _) = bobby().await;
    let (id, number, request_id) = sign_in(&server, &phone, BOBBY).await;
    assert!(phone
        .approve(request_id.clone(), wrong(&number))
        .await
        .is_err());
    assert_eq!(
        phone.approve(request_id, number).await.unwrap(),
        Decision::Approved
    );
    assert_eq!(server.status(&id).await.unwrap(), "approved");
}

#[tokio::test]
async fn deny_ends_the_sign_in_as_denied() {
    let (server, phone, _) = bobby().await;
    let (id, _, request_id) = sign_in(&server, &phone, BOBBY).await;
    assert_eq!(phone.deny(request_id).await.unwrap(), Decision::Denied);
    assert_eq!(server.status(&id).await.unwrap(), "denied");
}

#[tokio::test]
async fn report_ends_the_sign_in_as_reported() {
    let (server, phone, _) = bobby().await;
    let (id, _, request_id) = sign_in(&server, &phone, BOBBY).await;
    assert_eq!(
        phone.report_fraud(request_id).await.unwrap(),
        Decision::Reported
    );
    assert_eq!(server.status(&id).await.unwrap(), "reported");
}

#[tokio::test]
async fn a_replayed_approval_is_rejected() {
    let (server, proxy, phone, _) = bobby_behind_proxy().await;

    let (id, number, request_id) = sign_in(&server, &phone, BOBBY).await;
    phone.approve(request_id.clone(), number).await.unwrap();
    assert_eq!(server.status(&id).await.unwrap(), "approved");

    let recorded = proxy
        .last("POST", "/response")
        .expect("the approval went through the proxy");
    assert_eq!(recorded.status, 200);
    let body: serde_json::Value = serde_json::from_str(&recorded.request_body).unwrap();
    let replay = server
        .browser
        .post(format!(
            "{}api/v1/device/requests/{request_id}/response",
            server.base_url
        ))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status().as_u16(), 409);
    let err: serde_json::Value = replay.json().await.unwrap();
    assert_eq!(err["error"], "request_not_pending");

    // Replaying the same approval onto the *next* sign-in does not work either: new id, new nonce.
    let (id2, _) = server.start_sign_in(BOBBY).await.unwrap();
    let pending = phone.core.poll(10).await.unwrap();
    let next = pending.into_iter().next().expect("second request");
    let replay = server
        .browser
        .post(format!(
            "{}api/v1/device/requests/{}/response",
            server.base_url, next.request_id
        ))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(replay.status().is_client_error());
    assert_eq!(server.status(&id2).await.unwrap(), "pending");
}

#[tokio::test]
async fn an_expired_request_is_rejected_by_phone_and_server() {
    let server = TestServer::start_with_ttl("Contoso", 1).await.unwrap();
    let link = server.user_with_link(BOBBY, "Bobby Smith").await.unwrap();
    let phone = TestPhone::new().unwrap();
    phone.enroll_passwordless(&link).await.unwrap();

    let (id, number, request_id) = sign_in(&server, &phone, BOBBY).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let result = phone.approve(request_id.clone(), number.clone()).await;
    assert!(
        matches!(result, Err(AuthenticatorError::RequestExpired)),
        "{result:?}"
    );
    assert_eq!(server.status(&id).await.unwrap(), "expired");
}

#[tokio::test]
async fn the_server_rejects_a_correctly_signed_approval_after_expiry() {
    let server = TestServer::start_with_ttl("Contoso", 1).await.unwrap();
    let link = server.user_with_link(BOBBY, "Bobby Smith").await.unwrap();
    // A device that answers by hand, so no phone-side expiry check can hide the server's.
    let device = RawDevice::enroll(&link).await.unwrap();
    let (id, number) = server.start_sign_in(BOBBY).await.unwrap();
    let (request_id, details) = device
        .pending()
        .await
        .unwrap()
        .into_iter()
        .next()
        .expect("a pending request");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let account = device.account_id.to_string();
    let (status, body) = device
        .forge_approval(&request_id, &account, &details, &number)
        .await
        .unwrap();
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["error"], "request_expired");
    assert_eq!(server.status(&id).await.unwrap(), "expired");
}

#[tokio::test]
async fn an_approval_signed_by_another_accounts_key_is_rejected() {
    let (server, proxy, phone, bobby) = bobby_behind_proxy().await;
    // Mallory has her own, legitimately enrolled account on the same server.
    let mallory = RawDevice::enroll(
        &server
            .user_with_link("mallory@contoso.test", "Mallory")
            .await
            .unwrap(),
    )
    .await
    .unwrap();

    // Mallory saw everything on the wire (details, and she stands next to the screen: the number).
    let (id, number, request_id) = sign_in(&server, &phone, BOBBY).await;
    let details = details_text(
        &proxy
            .last("GET", &format!("/requests/{request_id}"))
            .expect("details fetched")
            .response_body,
    )
    .unwrap();

    // Claiming to be Bobby's account: the server checks Bobby's key, not Mallory's.
    let (status, body) = mallory
        .forge_approval(&request_id, &bobby.account_id, &details, &number)
        .await
        .unwrap();
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "bad_signature");
    // Answering as herself: the request is not hers.
    let (status, body) = mallory
        .forge_approval(&request_id, mallory.account_id.as_str(), &details, &number)
        .await
        .unwrap();
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "unknown_request");

    assert_eq!(server.status(&id).await.unwrap(), "pending");
    // Bobby can still answer his own request.
    assert_eq!(
        phone.approve(request_id, number).await.unwrap(),
        Decision::Approved
    );
    assert_eq!(server.status(&id).await.unwrap(), "approved");
}

#[tokio::test]
async fn two_accounts_from_two_servers_live_on_one_phone() {
    let contoso = TestServer::start("Contoso").await.unwrap();
    let fabrikam = TestServer::start("Fabrikam").await.unwrap();
    let phone = TestPhone::new().unwrap();
    let a = phone
        .enroll_passwordless(&contoso.user_with_link(BOBBY, "Bobby Smith").await.unwrap())
        .await
        .unwrap();
    let b = phone
        .enroll_passwordless(
            &fabrikam
                .user_with_link("bobby@fabrikam.test", "Bobby at Fabrikam")
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    assert_ne!(a.account_id, b.account_id);
    let accounts = phone.core.accounts().await.unwrap();
    assert_eq!(accounts.len(), 2);
    let servers: Vec<_> = accounts.iter().map(|a| a.server_name.as_str()).collect();
    assert!(
        servers.contains(&"Contoso") && servers.contains(&"Fabrikam"),
        "{servers:?}"
    );

    let (id_a, number_a) = contoso.start_sign_in(BOBBY).await.unwrap();
    let (id_b, number_b) = fabrikam.start_sign_in("bobby@fabrikam.test").await.unwrap();
    let mut pending = phone.core.poll(10).await.unwrap();
    // Both servers' requests arrive, each under its own account.
    for _ in 0..10 {
        if pending.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        pending = phone.core.poll(1).await.unwrap();
    }
    assert_eq!(pending.len(), 2, "{pending:?}");
    let ra = pending
        .iter()
        .find(|r| r.account_id == a.account_id)
        .expect("Contoso request");
    let rb = pending
        .iter()
        .find(|r| r.account_id == b.account_id)
        .expect("Fabrikam request");
    assert_eq!(ra.server_name, "Contoso");
    assert_eq!(rb.server_name, "Fabrikam");

    // A number is only good for its own request.
    if number_a != number_b {
        assert!(phone
            .core
            .approve(
                rb.account_id.clone(),
                rb.request_id.clone(),
                number_a.clone()
            )
            .await
            .is_err());
    }
    phone
        .core
        .approve(ra.account_id.clone(), ra.request_id.clone(), number_a)
        .await
        .unwrap();
    phone
        .core
        .approve(rb.account_id.clone(), rb.request_id.clone(), number_b)
        .await
        .unwrap();
    assert_eq!(contoso.status(&id_a).await.unwrap(), "approved");
    assert_eq!(fabrikam.status(&id_b).await.unwrap(), "approved");
}

#[tokio::test]
async fn no_approval_is_signed_without_user_verification() {
    let server = TestServer::start("Contoso").await.unwrap();
    let link = server.user_with_link(BOBBY, "Bobby Smith").await.unwrap();
    let verifier = CountingVerifier::new(VerificationOutcome::Verified);
    let keys = RecordingKeyStore::verified_by(verifier.clone());
    let phone = TestPhone::with(keys.clone()).unwrap();
    phone.enroll_passwordless(&link).await.unwrap();

    // The user refuses the biometric/passcode prompt: no signature is made, the page waits.
    let (id, number, request_id) = sign_in(&server, &phone, BOBBY).await;
    verifier.set_answer(Ok(VerificationOutcome::Denied));
    keys.clear();
    let asked = verifier.calls();
    let refused = phone.approve(request_id.clone(), number.clone()).await;
    assert!(
        matches!(refused, Err(AuthenticatorError::VerificationFailed)),
        "{refused:?}"
    );
    assert_eq!(verifier.calls(), asked + 1, "the verifier was asked");
    assert!(
        keys.signs().is_empty(),
        "nothing was signed after a refusal"
    );
    assert_eq!(server.status(&id).await.unwrap(), "pending");

    // Cancelling is the same.
    verifier.set_answer(Err(PlatformError::Cancelled));
    let cancelled = phone.approve(request_id.clone(), number.clone()).await;
    assert!(
        matches!(cancelled, Err(AuthenticatorError::UserCancelled)),
        "{cancelled:?}"
    );
    assert!(keys.signs().is_empty());

    // Once verified, exactly one approval signature is made and the page signs in.
    verifier.set_answer(Ok(VerificationOutcome::Verified));
    assert_eq!(
        phone.approve(request_id, number).await.unwrap(),
        Decision::Approved
    );
    assert_eq!(keys.signs().len(), 1);
    assert_eq!(server.status(&id).await.unwrap(), "approved");
}

#[tokio::test]
async fn cancel_poll_ends_a_long_wait_and_later_polls_still_work() {
    let (server, phone, _) = bobby().await;
    let core = phone.core.clone();
    let waiting = tokio::spawn(async move { core.poll(60).await });
    // Let the long-poll reach the server, then cancel it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    phone.core.cancel_poll();
    let ended = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the cancelled poll returned instead of waiting 60 s")
        .unwrap()
        .unwrap();
    assert!(ended.is_empty());

    // A poll started after the cancel waits and receives normally.
    let (id, number) = server.start_sign_in(BOBBY).await.unwrap();
    let pending = phone.core.poll(10).await.unwrap();
    assert_eq!(pending.len(), 1);
    phone
        .core
        .approve(
            pending[0].account_id.clone(),
            pending[0].request_id.clone(),
            number,
        )
        .await
        .unwrap();
    assert_eq!(server.status(&id).await.unwrap(), "approved");
}
