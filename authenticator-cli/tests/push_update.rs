//! `authenticator push-update` (PROTOCOL.md §5.10) against a real sign-in server that pushes
//! through a local FCM endpoint: after the update, the next sign-in's push goes to the new
//! token only; an unreachable server is reported per account with its own exit code.
mod support;

use std::time::Duration;

use signin_domain::delivery::push::PushConfig;
use signin_server::push_local::Fcm;
use signin_server::ServeConfig;
use support::{json_out, setup_with, Setup, UPN};

/// Enrolls the phone for the test user with an FCM token and enables phone sign-in; the
/// account as JSON.
async fn enroll_fcm(s: &Setup, token: &str) -> serde_json::Value {
    let link = s.link().await;
    let account = json_out(
        &s.phone(&["enroll", &link, "--push", "fcm", "--push-token", token])
            .await,
    );
    json_out(&s.phone(&["enable-phone-sign-in", UPN]).await);
    account
}

/// The FCM tokens of every message the endpoint received, once the sign-in's push arrived.
async fn tokens_after_push(fcm: &Fcm, already: usize) -> Vec<String> {
    for _ in 0..200 {
        if fcm.sends().len() > already {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fcm.sends()
        .iter()
        .map(|s| s.body["message"]["token"].as_str().unwrap().to_owned())
        .collect()
}

async fn fcm_setup(dir: &tempfile::TempDir) -> (Setup, Fcm) {
    let fcm = Fcm::start(dir.path()).await;
    let s = setup_with(ServeConfig {
        push: PushConfig {
            fcm: Some(fcm.config()),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    (s, fcm)
}

#[tokio::test(flavor = "multi_thread")]
async fn after_push_update_the_next_sign_in_is_pushed_to_the_new_fcm_token_only() {
    let dir = tempfile::tempdir().unwrap();
    let (s, fcm) = fcm_setup(&dir).await;
    let account = enroll_fcm(&s, "fcm-old").await;
    s.start_sign_in().await;
    assert_eq!(tokens_after_push(&fcm, 0).await, vec!["fcm-old"]);

    let results = json_out(
        &s.phone(&["push-update", "--push", "fcm", "--push-token", "fcm-new"])
            .await,
    );
    assert_eq!(results.as_array().unwrap().len(), 1);
    assert_eq!(results[0]["account_id"], account["account_id"]);
    assert_eq!(results[0]["outcome"], "updated");

    s.start_sign_in().await;
    assert_eq!(tokens_after_push(&fcm, 1).await, vec!["fcm-old", "fcm-new"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn push_update_with_a_server_down_says_so_per_account_and_exits_4() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _fcm) = fcm_setup(&dir).await;
    enroll_fcm(&s, "fcm-old").await;
    let mut update = s.phone_command(&["push-update", "--push", "fcm", "--push-token", "fcm-new"]);
    s.server.shutdown().await;
    let out = tokio::task::spawn_blocking(move || update.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let results: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results[0]["outcome"], "retry_later", "{results}");
}

#[tokio::test(flavor = "multi_thread")]
async fn push_flags_that_do_not_fit_the_kind_are_refused_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (s, fcm) = fcm_setup(&dir).await;
    enroll_fcm(&s, "fcm-old").await;
    for args in [
        &["push-update", "--push", "fcm"][..],
        &["push-update", "--push-token", "stray"][..],
        &[
            "push-update",
            "--push",
            "web-push",
            "--push-endpoint",
            "https://push.example.net/x",
        ][..],
    ] {
        let out = s.phone(args).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
    }
    s.start_sign_in().await;
    assert_eq!(tokens_after_push(&fcm, 0).await, vec!["fcm-old"]);
}
