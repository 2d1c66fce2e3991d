//! Two server instances on one PostgreSQL database (`TEST_DATABASE_URL`; run by
//! `cargo xtask test`, feature `postgres-tests`): what one instance does wakes the waiters of
//! the other through LISTEN/NOTIFY. The page and the phone talk to different instances.
use std::sync::Arc;
use std::time::Duration;

use e2e::{TestPhone, TestServer};
use signin_domain::store::testing::TestDatabase;
use signin_domain::store::Backend;

const ALICE: &str = "alice@contoso.test";
/// Generous bound for a wake-up that should take milliseconds (a long-poll that is not woken
/// waits 60 s).
const PROMPTLY: Duration = Duration::from_secs(20);

struct Pair {
    a: TestServer,
    b: TestServer,
    phone: TestPhone,
    account_id: String,
}

/// Instances A and B on one fresh database; Alice's phone enrolled through B (its link names
/// B), so the phone polls and answers through B while the sign-in page uses A.
async fn pair() -> Pair {
    let db = Arc::new(TestDatabase::create().await.unwrap());
    assert_eq!(
        db.backend,
        Backend::Postgres,
        "these tests need TEST_DATABASE_URL=postgres://... (cargo xtask test sets it)"
    );
    let a = TestServer::start_on(db.clone(), "Contoso", 90)
        .await
        .unwrap();
    let b = TestServer::start_on(db, "Contoso", 90).await.unwrap();
    a.set_policy(signin_domain::rules::policy::Mode::Any)
        .await
        .unwrap();
    signin_domain::accounts::add_user(a.running.pool(), ALICE, "Alice", &[])
        .await
        .unwrap();
    let b_url = url::Url::parse(&b.base_url).unwrap();
    let link = signin_domain::accounts::registration_link(b.running.pool(), ALICE, &b_url, 600)
        .await
        .unwrap();
    let phone = TestPhone::new().unwrap();
    let account = phone.enroll_passwordless(&link).await.unwrap();
    Pair {
        a,
        b,
        phone,
        account_id: account.account_id,
    }
}

/// Waits (bounded) until `ready` holds: orders the test's steps without sleeping blindly.
async fn until(what: &str, ready: impl Fn() -> bool) {
    for _ in 0..2000 {
        if ready() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting until {what}");
}

/// The sign-in page's long-poll (`?wait=60`) on `server`, as a task.
fn page_waits(server: &TestServer, id: &str) -> tokio::task::JoinHandle<String> {
    let url = format!("{}api/v1/signin/{id}?wait=60", server.base_url);
    let browser = server.browser.clone();
    tokio::spawn(async move {
        let body: serde_json::Value = browser
            .get(url)
            .timeout(Duration::from_secs(90))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["status"].as_str().unwrap().to_owned()
    })
}

/// Page on A waits; the phone approves through B; A's page wakes with `approved`.
async fn approve_across(p: &Pair) {
    let (id, number) = p.a.start_sign_in(ALICE).await.unwrap();
    let pending = p.phone.core.poll(10).await.unwrap();
    let request = pending.into_iter().find(|r| r.upn == ALICE).unwrap();
    let page = page_waits(&p.a, &id);
    let waiters = p.a.running.state().request_waiters.clone();
    until("A's page waits", || waiters.is_waiting(&id)).await;
    p.phone
        .core
        .approve(request.account_id.clone(), request.request_id, number)
        .await
        .unwrap();
    let status = tokio::time::timeout(PROMPTLY, page)
        .await
        .expect("A's waiting page woke up")
        .unwrap();
    assert_eq!(status, "approved");
}

#[tokio::test]
async fn a_response_through_one_instance_wakes_the_page_waiting_on_the_other() {
    let p = pair().await;
    approve_across(&p).await;
}

#[tokio::test]
async fn a_sign_in_started_on_one_instance_wakes_the_phone_polling_the_other() {
    let p = pair().await;
    let core = p.phone.core.clone();
    let poll = tokio::spawn(async move { core.poll(60).await });
    let b_state = p.b.running.state().clone();
    let account = p.account_id.clone();
    until("the phone's long-poll waits on B", || {
        b_state.longpoll.accounts.is_waiting(&account)
    })
    .await;
    let (_id, number) = p.a.start_sign_in(ALICE).await.unwrap();
    let pending = tokio::time::timeout(PROMPTLY, poll)
        .await
        .expect("B's long-poll woke up")
        .unwrap()
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].upn, ALICE);
    // And the phone can answer it through B.
    let decision = p
        .phone
        .core
        .approve(
            pending[0].account_id.clone(),
            pending[0].request_id.clone(),
            number,
        )
        .await
        .unwrap();
    assert!(matches!(decision, authenticator_core::Decision::Approved));
}

/// A sign-in started through another instance (another application or browser) never ends the
/// user's pending one (review issue 8, item 7: a stranger cannot cancel the user's sign-in):
/// both stay pending, the phone polling either instance gets both, and answering the first
/// through the other instance wakes its page.
#[tokio::test]
async fn a_sign_in_on_one_instance_leaves_the_one_pending_on_the_other() {
    let p = pair().await;
    let (first, number) = p.a.start_sign_in(ALICE).await.unwrap();
    let page = page_waits(&p.a, &first);
    let waiters = p.a.running.state().request_waiters.clone();
    until("A's page waits", || waiters.is_waiting(&first)).await;
    let (second, _) = p.b.start_sign_in(ALICE).await.unwrap();
    assert_ne!(first, second);
    assert_eq!(p.a.status(&first).await.unwrap(), "pending");
    assert_eq!(p.b.status(&second).await.unwrap(), "pending");
    assert!(!page.is_finished(), "A's page is still waiting");
    let pending = p.phone.core.poll(5).await.unwrap();
    let ids: Vec<_> = pending.iter().map(|r| r.request_id.as_str()).collect();
    assert!(
        ids.contains(&first.as_str()) && ids.contains(&second.as_str()),
        "{ids:?}"
    );
    let request = pending.iter().find(|r| r.request_id == first).unwrap();
    p.phone
        .core
        .approve(request.account_id.clone(), first.clone(), number)
        .await
        .unwrap();
    let status = tokio::time::timeout(PROMPTLY, page)
        .await
        .expect("A's waiting page woke up")
        .unwrap();
    assert_eq!(status, "approved");
    assert_eq!(p.b.status(&second).await.unwrap(), "pending");
}

#[tokio::test]
async fn listeners_reconnect_after_losing_their_connection() {
    let p = pair().await;
    // Kill both instances' LISTEN connections from the server side.
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
    )
    .fetch_all(p.a.running.pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(killed.len() >= 2, "both listeners were found: {killed:?}");
    // Wake-ups still cross: missed ones are covered by the wake-all after reconnecting.
    approve_across(&p).await;
    approve_across(&p).await;
}

/// Each instance keeps copies of the policy and the groups for its sign-in starts (issue 24):
/// changes written through A apply to B's very next start, with B's copies warm.
#[tokio::test]
async fn policy_and_group_changes_through_one_instance_apply_to_the_others_next_start() {
    use signin_domain::rules::policy::{PolicyUpdate, Target};
    let p = pair().await;
    p.b.start_sign_in(ALICE).await.unwrap();
    let a_pool = p.a.running.pool();
    signin_domain::accounts::add_user(a_pool, "bob@contoso.test", "Bob", &["pilots".to_owned()])
        .await
        .unwrap();
    let pilots_only = PolicyUpdate {
        target: Some(Target::Group("pilots".to_owned())),
        ..Default::default()
    };
    signin_domain::accounts::set_policy(a_pool, &pilots_only)
        .await
        .unwrap();
    let refused = p.b.start_sign_in_raw(ALICE).await.unwrap();
    assert_eq!(refused["error"], "policy_disabled", "{refused}");
    signin_domain::store::users::add_to_group(a_pool, ALICE, "pilots")
        .await
        .unwrap();
    p.b.start_sign_in(ALICE).await.unwrap();
}
