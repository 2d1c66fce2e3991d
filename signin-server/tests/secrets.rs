//! Secrets stay out of the audit log and the logs: a full run (enrollment, wrong and right
//! number, APNs and FCM pushes, a stale token, a report, a refused sign-in) with the logs
//! captured, then both scanned for the run's numbers, code, keys and tokens. Alone in its test
//! binary so that the thread-local log capture sees every event.
mod endpoints;
mod support;

use authenticator_protocol::sign_in::Decision;
use endpoints::*;
use support::scan::{audit_leaks, audit_texts, leaks, words, Captured, Secrets};
use support::*;

#[tokio::test(flavor = "current_thread")]
async fn no_numbers_codes_keys_or_tokens_in_audit_or_logs() {
    // A thread-local capture: on the current-thread runtime, spawned push tasks run on this
    // thread, under the same subscriber.
    let (captured, _guard) = Captured::install();

    let dir = tempfile::tempdir().unwrap();
    let apns = Apns::start(dir.path()).await;
    let fcm = Fcm::start(dir.path()).await;
    let h = push_harness(Some(&apns), Some(&fcm), fast_retry(2), generous()).await;
    let fcm_token = "fcm-secret-token-Zq81nA0Lx";

    // Enrollment with the code, an approval with the number, an FCM push, a stale APNs
    // token, a report, a rate-limited start.
    h.add_user("sec@contoso.com", &[]).await;
    let link = h.link("sec@contoso.com", 600).await;
    let mut phone = Phone::new();
    phone.push_kind = "apns".into();
    phone.push_token = APNS_TOKEN.into();
    phone.enroll(&h, &link).await;
    phone.enable_passwordless(&h).await;
    let started = h.start_signin("sec@contoso.com").await;
    h.state.dispatcher.wait_idle().await;
    let id = started.body["id"].as_str().unwrap().to_owned();
    let number = started.body["number"].as_str().unwrap().to_owned();
    let f = phone
        .fetch(&h, &id)
        .await
        .unwrap_or_else(|r| panic!("{:?}", r.body));
    let wrong = other_number(&number, 1);
    h.post(
        &respond_uri(&id),
        phone.answer(&f, Decision::Approve, Some(&wrong)),
    )
    .await;
    let ok = h
        .post(
            &respond_uri(&id),
            phone.answer(&f, Decision::Approve, Some(&number)),
        )
        .await;
    assert_eq!(ok.body["status"], "approved");

    let fphone = h
        .ready_phone_with_push("sec2@contoso.com", "fcm", fcm_token)
        .await;
    let r = h.start_signin("sec2@contoso.com").await;
    let id2 = r.body["id"].as_str().unwrap().to_owned();
    let number2 = r.body["number"].as_str().unwrap().to_owned();
    h.state.dispatcher.wait_idle().await;
    let f2 = fphone
        .fetch(&h, &id2)
        .await
        .unwrap_or_else(|r| panic!("{:?}", r.body));
    h.post(
        &respond_uri(&id2),
        fphone.answer(&f2, Decision::Report, None),
    )
    .await;
    assert_eq!(h.start_signin("sec2@contoso.com").await.error(), "paused");

    apns.unregister(APNS_TOKEN);
    let r = h.start_signin("sec@contoso.com").await;
    let number3 = r.body["number"].as_str().unwrap().to_owned();
    h.state.dispatcher.wait_idle().await;
    assert!(stale_reason(&h, &phone).await.is_some());
    assert_eq!(fcm.sends().len(), 1);
    assert_eq!(apns.hits().len(), 2);

    let rows = signin_domain::audit::list(&h.state.pool).await.unwrap();
    let (_, audit) = audit_texts(&rows);
    let logs = captured.text();
    assert!(logs.contains("push sent"), "logs were captured: {logs}");
    for event in [
        "enrolled",
        "signin_started",
        "push_delivery",
        "push_token_stale",
        "signin_decision",
        "wrong_number",
        "user_paused",
        "signin_paused",
    ] {
        assert!(audit.contains(event), "{event} audited:\n{audit}");
    }

    let jwt = apns.hits()[0]
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap()
        .trim_start_matches("bearer ")
        .to_owned();
    let access = fcm.issued()[0].clone();
    let mut secrets = Secrets::default();
    for (name, secret) in [
        ("enrollment code", link.code.clone()),
        ("APNs token", APNS_TOKEN.to_owned()),
        ("FCM token", fcm_token.to_owned()),
        ("APNs provider token", jwt),
        ("OAuth access token", access),
        ("nonce", authenticator_protocol::encoding::b64(&f.nonce)),
        ("details signature", f.signed.signature.clone()),
        ("device key", phone.device.public_key().to_b64()),
    ] {
        secrets.text(name, &secret);
    }
    for n in [&number, &wrong, &number2, &number3] {
        secrets.number("number", n);
    }
    let hits = audit_leaks(&rows, &secrets.0);
    assert!(hits.is_empty(), "{hits:#?}");
    let hits = leaks(&logs, &secrets.0);
    assert!(hits.is_empty(), "in the logs: {hits:#?}");
    for (name, text) in [("audit", &audit), ("logs", &logs)] {
        assert!(!text.contains("number="), "a number field in the {name}");
    }
}

#[test]
fn words_skip_sql_comments_of_logged_statements_but_keep_their_sql() {
    let logged =
        r#"db.statement="\n-- issue 11: fallback 42\nCREATE TABLE t (n INT DEFAULT 42)\n""#;
    let w = words(logged);
    assert!(!w.contains(&"11".to_owned()), "{w:?}");
    assert_eq!(w.iter().filter(|x| *x == "42").count(), 1, "{w:?}");
}

#[test]
fn words_skip_counters_but_keep_values() {
    assert_eq!(
        words("http{http_seq=42 route=/x} status=200 ms=7 outcome=apns:sent 2026-11-25T20:42:00Z n=42"),
        [
            "http",
            "http_seq",
            "route",
            "/x",
            "status",
            "ms",
            "outcome",
            "apns:sent",
            "2026-11-25T20:42:00Z",
            "n",
            "42"
        ]
    );
}
