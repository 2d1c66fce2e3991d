//! Storage behaviour that must be the same on SQLite and PostgreSQL (`TEST_DATABASE_URL`):
//! concurrent writers, the audit sequence, one pending request per user.
mod support;

use signin_server::audit::{self, Event};
use signin_server::store;
use support::*;

const BOB: &str = "bob@contoso.test";

#[tokio::test]
async fn concurrent_audit_writers_get_a_gapless_sequence() {
    let h = harness().await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let pool = h.state.pool.clone();
        tasks.push(tokio::spawn(async move {
            let outcome = format!("writer-{i}");
            audit::record(
                &pool,
                Event::PolicyChanged,
                audit::Entry {
                    outcome: &outcome,
                    ..Default::default()
                },
            )
            .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let rows = audit::list(&h.state.pool).await.unwrap();
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=24).collect::<Vec<i64>>());
    let mut outcomes: Vec<&str> = rows.iter().map(|r| r.outcome.as_str()).collect();
    outcomes.sort_unstable();
    outcomes.dedup();
    assert_eq!(outcomes.len(), 24, "every writer's entry is there once");
}

#[tokio::test]
async fn concurrent_sign_ins_leave_one_pending_request() {
    let h = harness().await;
    let _phone = h.ready_phone(BOB).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let h2 = h.app.clone();
        tasks.push(tokio::spawn(async move {
            use axum::body::Body;
            use axum::http::Request;
            use tower::ServiceExt;
            let resp = h2
                .oneshot(
                    Request::post("/api/v1/signin")
                        .header("content-type", "application/json")
                        .body(Body::from(format!(r#"{{"upn":"{BOB}"}}"#)))
                        .unwrap(),
                )
                .await
                .unwrap();
            resp.status()
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap().is_success());
    }
    let pending: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM signin_requests WHERE upn = $1 AND status = 'pending'",
    )
    .bind(BOB)
    .fetch_one(&h.state.pool)
    .await
    .unwrap();
    assert_eq!(pending, 1);
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM signin_requests WHERE upn = $1")
        .bind(BOB)
        .fetch_one(&h.state.pool)
        .await
        .unwrap();
    assert_eq!(total, 8);
}

#[tokio::test]
async fn migrations_are_idempotent_and_settings_shared() {
    let h = harness().await;
    // A second connection (another process or instance) migrates nothing and sees the same key.
    let again = store::connect(&h.db.url).await.unwrap();
    let a = store::server_signer(&h.state.pool).await.unwrap();
    let b = store::server_signer(&again).await.unwrap();
    assert_eq!(a.public_key(), b.public_key());
    store::set_setting(&again, store::SERVER_NAME_SETTING, "Fabrikam")
        .await
        .unwrap();
    assert_eq!(store::server_name(&h.state.pool).await.unwrap(), "Fabrikam");
}

#[test]
fn database_urls() {
    assert_eq!(
        store::Backend::of_url("sqlite://x.db").unwrap(),
        store::Backend::Sqlite
    );
    assert_eq!(
        store::Backend::of_url("postgres://u@h/db").unwrap(),
        store::Backend::Postgres
    );
    assert_eq!(
        store::Backend::of_url("postgresql://u@h/db").unwrap(),
        store::Backend::Postgres
    );
    assert!(store::Backend::of_url("mysql://u@h/db").is_err());
    assert!(store::Backend::of_url("signin.db").is_err());
}
