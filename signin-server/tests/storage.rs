//! Storage behaviour that must be the same on SQLite and PostgreSQL (`TEST_DATABASE_URL`):
//! concurrent writers, the audit sequence, one pending request per user.
mod support;

use signin_domain::audit::{self, Event};
use signin_domain::store;
use support::*;

const BOB: &str = "bob@contoso.test";

#[tokio::test]
async fn repeated_audit_entries_collapse_into_one_line_and_cannot_hide_others() {
    let h = harness().await;
    let entry = |upn, outcome| audit::Entry {
        upn: Some(upn),
        outcome,
        ..Default::default()
    };
    let before = audit::list(&h.state.pool).await.unwrap().len();
    audit::record(
        &h.state.pool,
        Event::UserAdded,
        entry("alice@contoso.test", "ok"),
    )
    .await
    .unwrap();
    // 520 refused starts for one user, with another user's entry in between.
    for i in 0..520 {
        audit::record(&h.state.pool, Event::RateLimited, entry(BOB, "blocked"))
            .await
            .unwrap();
        if i == 100 {
            audit::record(
                &h.state.pool,
                Event::RateLimited,
                entry("eve@contoso.test", "blocked"),
            )
            .await
            .unwrap();
        }
    }
    // A different outcome is its own line.
    audit::record(
        &h.state.pool,
        Event::RateLimited,
        entry(BOB, "cooldown_started"),
    )
    .await
    .unwrap();
    let rows = audit::list(&h.state.pool).await.unwrap();
    let new: Vec<_> = rows[before..].iter().collect();
    let summary: Vec<(&str, Option<&str>, &str, i64)> = new
        .iter()
        .map(|r| {
            (
                r.event.as_str(),
                r.upn.as_deref(),
                r.outcome.as_str(),
                r.repeats,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("user_added", Some("alice@contoso.test"), "ok", 0),
            ("rate_limited", Some(BOB), "blocked", 519),
            ("rate_limited", Some("eve@contoso.test"), "blocked", 0),
            ("rate_limited", Some(BOB), "cooldown_started", 0),
        ]
    );
    assert!(new[1].last_at.unwrap() >= new[1].at);
    // The filters find the other user's entries whatever the volume.
    let filter = signin_domain::store::audit::AuditFilter {
        upn: Some("alice@contoso.test".into()),
        limit: 500,
        ..Default::default()
    };
    let found = audit::query(&h.state.pool, &filter).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].event, "user_added");
}

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
    // The harness registered its application first (one entry).
    assert_eq!(seqs, (1..=25).collect::<Vec<i64>>());
    let mut outcomes: Vec<&str> = rows
        .iter()
        .filter(|r| r.event == "policy_changed")
        .map(|r| r.outcome.as_str())
        .collect();
    outcomes.sort_unstable();
    outcomes.dedup();
    assert_eq!(outcomes.len(), 24, "every writer's entry is there once");
}

#[tokio::test]
async fn concurrent_sign_ins_each_stay_pending_none_supersedes_another() {
    let h = harness().await;
    let _phone = h.ready_phone(BOB).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (h2, auth) = (h.app.clone(), h.app_auth.clone());
        tasks.push(tokio::spawn(async move {
            use axum::body::Body;
            use axum::http::Request;
            use tower::ServiceExt;
            let resp = h2
                .oneshot(
                    Request::post("/api/v1/signin")
                        .header("content-type", "application/json")
                        .header("authorization", auth)
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
    // Each start is its own sign-in: a start (by anyone) never cancels another one.
    assert_eq!(pending, 8);
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
