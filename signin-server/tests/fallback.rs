//! The offline fallback's rules (issue 11), on SQLite or PostgreSQL: the TOTP secret each
//! enrollment hands out, one sign-in per time step, the bounded tries and the lock, backup
//! codes that work once and are replaced by a new set, a removed phone's codes refused, the
//! policy switch, and the audit of each.
mod support;

use axum::http::StatusCode;
use signin_domain::accounts::fallback::{self, Method, Outcome};
use signin_domain::audit;
use support::*;
use totp_rs::TOTP;

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Enrolls a phone for `upn` (adding the user) and returns it with its TOTP generator, built
/// from the `totp_uri` of the enroll-complete answer.
async fn enrolled(h: &Harness, upn: &str) -> (Phone, TOTP) {
    h.add_user(upn, &[]).await;
    let link = h.link(upn, 600).await;
    let mut phone = Phone::new();
    let challenge = phone.challenge(h, &link).await.unwrap();
    let r = h
        .post(
            "/api/v1/enroll/complete",
            phone.complete_body(&link.code, challenge),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    phone.account_id = Some(
        authenticator_protocol::AccountId::parse(r.body["account_id"].as_str().unwrap()).unwrap(),
    );
    let uri = r.body["totp_uri"].as_str().expect("a TOTP URI").to_owned();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    let totp = TOTP::from_url(&uri).unwrap();
    assert_eq!((totp.digits, totp.step), (6, 30));
    assert_eq!(totp.secret.len(), 20);
    (phone, totp)
}

async fn events(h: &Harness, upn: &str, event: &str) -> Vec<String> {
    audit::list(&h.state.pool)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.event == event && r.upn.as_deref() == Some(upn))
        .map(|r| r.outcome)
        .collect()
}

/// A 6-digit code that is none of the given ones.
fn wrong_code(avoid: &[&str]) -> String {
    (0..)
        .map(|i: u32| format!("{:06}", (i * 7919 + 123_457) % 1_000_000))
        .find(|c| !avoid.contains(&c.as_str()))
        .unwrap()
}

#[tokio::test]
async fn a_totp_code_signs_in_once_per_time_step_and_only_when_the_policy_allows_it() {
    let h = harness().await;
    let (phone, totp) = enrolled(&h, "bobby@contoso.test").await;
    let upn = "bobby@contoso.test";
    let code = totp.generate(now_secs());

    // Off by default.
    assert_eq!(
        fallback::sign_in_with_code(&h.state.pool, &h.state.passwords, upn, &code, None)
            .await
            .unwrap(),
        Outcome::Disabled
    );
    fallback::set_enabled(&h.state.pool, true).await.unwrap();
    assert_eq!(
        fallback::sign_in_with_code(&h.state.pool, &h.state.passwords, upn, &code, None)
            .await
            .unwrap(),
        Outcome::SignedIn {
            method: Method::Totp,
            device: Some(phone.account_id.as_ref().unwrap().as_str().to_owned()),
        }
    );
    // The same code again, and the previous step's code: replays.
    assert_eq!(
        fallback::sign_in_with_code(&h.state.pool, &h.state.passwords, upn, &code, None)
            .await
            .unwrap(),
        Outcome::Replayed
    );
    let previous = totp.generate(now_secs() - 30);
    if previous != code {
        assert_eq!(
            fallback::sign_in_with_code(&h.state.pool, &h.state.passwords, upn, &previous, None)
                .await
                .unwrap(),
            Outcome::Replayed
        );
    }
    // A code of two steps ago is outside the window; another user's code does not work.
    let (_, other) = enrolled(&h, "carol@contoso.test").await;
    let old = totp.generate(now_secs() - 90);
    assert_eq!(
        fallback::sign_in_with_code(&h.state.pool, &h.state.passwords, upn, &old, None)
            .await
            .unwrap(),
        Outcome::Refused
    );
    let carols = other.generate(now_secs());
    if carols != code && carols != previous {
        assert_eq!(
            fallback::sign_in_with_code(&h.state.pool, &h.state.passwords, upn, &carols, None)
                .await
                .unwrap(),
            Outcome::Refused
        );
    }

    let outcomes = events(&h, upn, "fallback_used").await;
    assert_eq!(outcomes.first().map(String::as_str), Some("disabled"));
    assert!(outcomes.iter().any(|o| o == "totp:ok"), "{outcomes:?}");
    assert!(outcomes.iter().any(|o| o == "totp:replay"), "{outcomes:?}");
    let all = audit::list(&h.state.pool).await.unwrap();
    assert!(all
        .iter()
        .any(|r| r.event == "policy_changed" && r.outcome == "offline_fallback=on"));
    // No code in the audit log.
    for r in &all {
        assert!(!r.outcome.contains(&code), "{r}");
    }
}

#[tokio::test]
async fn concurrent_uses_of_one_totp_code_sign_in_exactly_once() {
    let h = harness().await;
    let (_phone, totp) = enrolled(&h, "bobby@contoso.test").await;
    fallback::set_enabled(&h.state.pool, true).await.unwrap();
    let code = totp.generate(now_secs());
    let tries: Vec<_> = (0..5)
        .map(|_| {
            let pool = h.state.pool.clone();
            let argon2 = h.state.passwords.clone();
            let code = code.clone();
            tokio::spawn(async move {
                fallback::sign_in_with_code(&pool, &argon2, "bobby@contoso.test", &code, None)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tries {
        outcomes.push(t.await.unwrap());
    }
    let signed_in = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::SignedIn { .. }))
        .count();
    assert_eq!(signed_in, 1, "{outcomes:?}");
    assert!(outcomes
        .iter()
        .all(|o| matches!(o, Outcome::SignedIn { .. } | Outcome::Replayed)));
}

#[tokio::test]
async fn tries_are_bounded_per_window_and_locked_after_ten_failures_until_an_admin_unlocks() {
    let h = harness().await;
    let upn = "bobby@contoso.test";
    let (phone, totp) = enrolled(&h, upn).await;
    fallback::set_enabled(&h.state.pool, true).await.unwrap();
    let current = totp.generate(now_secs());
    let around = [
        totp.generate(now_secs() - 30),
        current.clone(),
        totp.generate(now_secs() + 30),
    ];
    let avoid: Vec<&str> = around.iter().map(String::as_str).collect();
    let wrong = wrong_code(&avoid);
    for _ in 0..fallback::TRIES_PER_WINDOW {
        assert_eq!(
            fallback::sign_in_with_code(&h.state.pool, &h.state.passwords, upn, &wrong, None)
                .await
                .unwrap(),
            Outcome::Refused
        );
    }
    // The window is full: even the right code is not checked.
    let Outcome::Throttled { retry_after_secs } =
        fallback::sign_in_with_code(&h.state.pool, &h.state.passwords, upn, &current, None)
            .await
            .unwrap()
    else {
        panic!("not throttled");
    };
    assert!(retry_after_secs > 0 && retry_after_secs <= 15 * 60);

    // The next window (moved back in the database), five more failures: locked, beyond windows.
    move_window(&h, upn).await;
    for _ in 0..(fallback::MAX_CONSECUTIVE_FAILURES - fallback::TRIES_PER_WINDOW) {
        assert_eq!(
            fallback::sign_in_with_code(&h.state.pool, &h.state.passwords, upn, &wrong, None)
                .await
                .unwrap(),
            Outcome::Refused
        );
    }
    move_window(&h, upn).await;
    assert_eq!(
        fallback::sign_in_with_code(&h.state.pool, &h.state.passwords, upn, &current, None)
            .await
            .unwrap(),
        Outcome::Locked
    );
    assert!(fallback::unlock(&h.state.pool, upn).await.unwrap());
    let code = totp.generate(now_secs());
    assert_eq!(
        fallback::sign_in_with_code(&h.state.pool, &h.state.passwords, upn, &code, None)
            .await
            .unwrap(),
        Outcome::SignedIn {
            method: Method::Totp,
            device: Some(phone.account_id.as_ref().unwrap().as_str().to_owned()),
        }
    );
    let outcomes = events(&h, upn, "fallback_used").await;
    assert!(
        outcomes
            .iter()
            .any(|o| o.starts_with("throttled retry_after_secs=")),
        "{outcomes:?}"
    );
    assert!(outcomes.iter().any(|o| o == "locked"), "{outcomes:?}");
    assert_eq!(events(&h, upn, "fallback_unlocked").await, ["ok"]);
}

/// Moves a user's try window into the past, as if 16 minutes had passed.
async fn move_window(h: &Harness, upn: &str) {
    sqlx::query("UPDATE fallback_tries SET window_start = window_start - $1 WHERE upn = $2")
        .bind(16 * 60 * 1000_i64)
        .bind(upn)
        .execute(&h.state.pool)
        .await
        .unwrap();
}

/// Every text column of every row of `table`, as one text.
async fn dump(h: &Harness, table: &str, columns: &str) -> String {
    use sqlx::Row;
    let rows = sqlx::query(&format!("SELECT {columns} FROM {table}"))
        .fetch_all(&h.state.pool)
        .await
        .unwrap();
    let n = columns.split(',').count();
    rows.iter()
        .flat_map(|r| (0..n).map(move |i| r.try_get::<String, _>(i).unwrap_or_default()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn backup_codes_work_once_and_a_new_set_replaces_the_old_one() {
    let h = harness().await;
    let upn = "dave@contoso.test";
    h.add_user(upn, &[]).await;
    fallback::set_enabled(&h.state.pool, true).await.unwrap();
    let codes = fallback::create_backup_codes(&h.state.pool, upn, None)
        .await
        .unwrap();
    assert_eq!(codes.len(), 10);
    let distinct: std::collections::HashSet<&str> = codes.iter().map(|c| c.as_str()).collect();
    assert_eq!(distinct.len(), 10);
    assert_eq!(
        fallback::sign_in_with_code(&h.state.pool, &h.state.passwords, upn, &codes[0], None)
            .await
            .unwrap(),
        Outcome::SignedIn {
            method: Method::BackupCode,
            device: None,
        }
    );
    // Once only; typed in capitals without dashes, another code works.
    assert_eq!(
        fallback::sign_in_with_code(&h.state.pool, &h.state.passwords, upn, &codes[0], None)
            .await
            .unwrap(),
        Outcome::Refused
    );
    let typed = codes[1].replace('-', " ").to_uppercase();
    assert_eq!(
        fallback::sign_in_with_code(&h.state.pool, &h.state.passwords, upn, &typed, None)
            .await
            .unwrap(),
        Outcome::SignedIn {
            method: Method::BackupCode,
            device: None,
        }
    );
    assert_eq!(
        signin_domain::accounts::backup_codes::counts(&h.state.pool, upn)
            .await
            .unwrap(),
        (8, 10)
    );
    // Another user cannot use them.
    h.add_user("erin@contoso.test", &[]).await;
    fallback::create_backup_codes(&h.state.pool, "erin@contoso.test", None)
        .await
        .unwrap();
    assert_eq!(
        fallback::sign_in_with_code(
            &h.state.pool,
            &h.state.passwords,
            "erin@contoso.test",
            &codes[2],
            None
        )
        .await
        .unwrap(),
        Outcome::Refused
    );
    // A new set: the old unused codes stop working, the new ones work.
    let fresh = fallback::create_backup_codes(&h.state.pool, upn, None)
        .await
        .unwrap();
    assert_eq!(
        fallback::sign_in_with_code(&h.state.pool, &h.state.passwords, upn, &codes[2], None)
            .await
            .unwrap(),
        Outcome::Refused
    );
    assert_eq!(
        fallback::sign_in_with_code(&h.state.pool, &h.state.passwords, upn, &fresh[9], None)
            .await
            .unwrap(),
        Outcome::SignedIn {
            method: Method::BackupCode,
            device: None,
        }
    );
    // Two sets created (a repeat within a minute is one entry with `repeats`).
    let created: Vec<_> = audit::list(&h.state.pool)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.event == "backup_codes_created" && r.upn.as_deref() == Some(upn))
        .map(|r| (r.outcome, r.repeats))
        .collect();
    assert_eq!(created, [("ok".to_owned(), 1)]);
    let used = events(&h, upn, "fallback_used").await;
    assert_eq!(
        used,
        [
            "backup_code:ok",
            "backup_code:refused",
            "backup_code:ok",
            "backup_code:refused",
            "backup_code:ok"
        ]
    );
    // Only hashes are stored.
    let stored = dump(&h, "backup_codes", "upn, code_hash").await;
    for c in codes.iter().chain(fresh.iter()) {
        assert!(!stored.contains(&c.replace('-', "")), "{stored}");
    }
}

#[tokio::test]
async fn a_removed_phones_totp_codes_are_refused_and_secrets_are_stored_sealed() {
    let h = harness().await;
    let upn = "bobby@contoso.test";
    let (phone, totp) = enrolled(&h, upn).await;
    fallback::set_enabled(&h.state.pool, true).await.unwrap();
    let stored = dump(&h, "totp_secrets", "account_id, secret_enc").await;
    assert!(!stored.contains(&totp.get_secret_base32()), "{stored}");
    assert!(!stored.contains(&authenticator_protocol::encoding::b64(&totp.secret)));
    signin_domain::accounts::devices::remove(&h.state.pool, phone.account().as_str())
        .await
        .unwrap();
    let code = totp.generate(now_secs());
    assert_eq!(
        fallback::sign_in_with_code(&h.state.pool, &h.state.passwords, upn, &code, None)
            .await
            .unwrap(),
        Outcome::Refused
    );
}

/// A browser on the in-process pages: its cookie, the last page.
struct Browser<'h> {
    h: &'h Harness,
    cookie: Option<String>,
}

impl<'h> Browser<'h> {
    async fn send(&mut self, mut req: axum::http::Request<axum::body::Body>) -> Reply {
        req.headers_mut()
            .insert("host", "127.0.0.1:8080".parse().unwrap());
        if let Some(c) = &self.cookie {
            req.headers_mut().insert("cookie", c.parse().unwrap());
        }
        let r = self.h.send(req).await;
        if let Some(set) = r.headers.get("set-cookie") {
            self.cookie = Some(set.to_str().unwrap().split(';').next().unwrap().to_owned());
        }
        r
    }

    async fn get(&mut self, uri: &str) -> Reply {
        self.send(
            axum::http::Request::get(uri)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
    }

    async fn post(&mut self, uri: &str, pairs: &[(&str, &str)]) -> Reply {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        self.send(
            axum::http::Request::post(uri)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(axum::body::Body::from(body))
                .unwrap(),
        )
        .await
    }

    async fn csrf(&mut self, uri: &str) -> String {
        let r = self.get(uri).await;
        let html = r.body.as_str().expect("an HTML page").to_owned();
        let marker = "name=\"csrf\" value=\"";
        let at = html.find(marker).expect("a form") + marker.len();
        html[at..].split('"').next().unwrap().to_owned()
    }

    async fn sign_in_with_password(&mut self, upn: &str, password: &str) {
        let csrf = self.csrf("/signin").await;
        self.post("/signin", &[("csrf", &csrf), ("upn", upn)]).await;
        let csrf = self.csrf("/signin/password").await;
        let r = self
            .post(
                "/signin/password",
                &[("csrf", &csrf), ("password", password)],
            )
            .await;
        assert_eq!(r.headers.get("location").unwrap(), "/me");
    }

    /// Signs in with a temporary access pass issued now (the admin console refuses a
    /// password alone).
    async fn sign_in_with_pass(&mut self, upn: &str) {
        let pass = signin_domain::accounts::temporary_pass::issue(&self.h.state.pool, upn, 600)
            .await
            .unwrap();
        let csrf = self.csrf("/signin").await;
        self.post("/signin", &[("csrf", &csrf), ("upn", upn)]).await;
        let csrf = self.csrf("/signin/pass").await;
        let r = self
            .post("/signin/pass", &[("csrf", &csrf), ("pass", &pass)])
            .await;
        assert_eq!(r.headers.get("location").unwrap(), "/me/security-info");
    }
}

#[tokio::test]
async fn admins_switch_the_offline_fallback_on_the_policy_page_and_others_cannot() {
    let h = harness().await;
    h.add_user("ada@contoso.test", &["admins"]).await;
    h.add_user("bobby@contoso.test", &[]).await;
    for upn in ["ada@contoso.test", "bobby@contoso.test"] {
        signin_domain::accounts::passwords::set_password(&h.state.pool, upn, "a long password 1")
            .await
            .unwrap();
    }
    // Bobby (no admin) cannot switch it.
    let mut bobby = Browser {
        h: &h,
        cookie: None,
    };
    bobby
        .sign_in_with_password("bobby@contoso.test", "a long password 1")
        .await;
    let csrf = bobby.csrf("/me").await;
    let r = bobby
        .post(
            "/admin/policy/fallback",
            &[("csrf", &csrf), ("enabled", "on")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!fallback::enabled(&h.state.pool).await.unwrap());

    let mut ada = Browser {
        h: &h,
        cookie: None,
    };
    ada.sign_in_with_pass("ada@contoso.test").await;
    let page = ada.get("/admin/policy").await;
    assert!(page
        .body
        .as_str()
        .unwrap()
        .contains("is <strong>not allowed</strong>"));
    let csrf = ada.csrf("/admin/policy").await;
    let r = ada
        .post(
            "/admin/policy/fallback",
            &[("csrf", &csrf), ("enabled", "on")],
        )
        .await;
    assert_eq!(r.headers.get("location").unwrap(), "/admin/policy");
    assert!(fallback::enabled(&h.state.pool).await.unwrap());
    let page = ada.get("/admin/policy").await;
    assert!(page
        .body
        .as_str()
        .unwrap()
        .contains("is <strong>allowed</strong>"));
    // A forged post without the session's CSRF token changes nothing.
    let r = ada
        .post(
            "/admin/policy/fallback",
            &[("csrf", "forged"), ("enabled", "off")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(fallback::enabled(&h.state.pool).await.unwrap());
    let changes: Vec<String> = audit::list(&h.state.pool)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.event == "policy_changed" && r.outcome.starts_with("offline_fallback"))
        .map(|r| r.outcome)
        .collect();
    assert_eq!(changes, ["offline_fallback=on"]);
}

#[tokio::test]
async fn an_unknown_upn_is_answered_like_a_known_one() {
    let h = harness().await;
    let (_phone, totp) = enrolled(&h, "bobby@contoso.test").await;
    fallback::set_enabled(&h.state.pool, true).await.unwrap();
    let now = now_secs();
    let around = [
        totp.generate(now - 30),
        totp.generate(now),
        totp.generate(now + 30),
    ];
    let avoid: Vec<&str> = around.iter().map(String::as_str).collect();
    let wrong = wrong_code(&avoid);
    for upn in ["bobby@contoso.test", "nobody@contoso.test"] {
        let mut seen = Vec::new();
        for code in [wrong.as_str(), "abcd-efgh-jkmn"]
            .into_iter()
            .cycle()
            .take(fallback::TRIES_PER_WINDOW as usize + 1)
        {
            seen.push(
                fallback::sign_in_with_code(&h.state.pool, &h.state.passwords, upn, code, None)
                    .await
                    .unwrap(),
            );
        }
        let last = seen.pop().unwrap();
        assert!(
            seen.iter().all(|o| *o == Outcome::Refused),
            "{upn}: {seen:?}"
        );
        assert!(matches!(last, Outcome::Throttled { .. }), "{upn}: {last:?}");
    }
}

/// `signin-server admin fallback set | show | unlock` (the binary, as an operator runs it).
#[test]
fn the_admin_cli_switches_shows_and_unlocks_the_fallback() {
    use std::process::Command;
    let db = signin_domain::store::testing::TestDatabase::create_blocking().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_signin-server"))
            .arg("--database")
            .arg(&db.url)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let upn = "bob@contoso.test";
    assert!(run(&["admin", "user", "add", "--upn", upn, "--name", "Bob"]).0);
    let (ok, shown, _) = run(&["admin", "fallback", "show"]);
    assert!(ok && shown.contains("offline-fallback: off"), "{shown}");
    assert!(
        shown.contains("5 per 900 s") && shown.contains("10 failures"),
        "{shown}"
    );
    assert!(run(&["admin", "fallback", "set", "--enabled", "on"]).0);
    assert!(run(&["admin", "fallback", "show"])
        .1
        .contains("offline-fallback: on"));
    let (ok, _, err) = run(&["admin", "fallback", "set", "--enabled", "maybe"]);
    assert!(!ok && err.contains("maybe"), "{err}");
    let (ok, out, _) = run(&["admin", "fallback", "unlock", "--upn", upn]);
    assert!(ok && out.contains("no fallback tries"), "{out}");
    // Lock Bob's fallback, then unlock it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pool = signin_domain::store::connect(&db.url).await.unwrap();
        let argon2 = signin_domain::accounts::passwords::PasswordGuard::default();
        for _ in 0..fallback::MAX_CONSECUTIVE_FAILURES {
            fallback::sign_in_with_code(&pool, &argon2, upn, "000000", None)
                .await
                .unwrap();
            sqlx::query("UPDATE fallback_tries SET window_tries = 0 WHERE upn = $1")
                .bind(upn)
                .execute(&pool)
                .await
                .unwrap();
        }
        assert_eq!(
            fallback::sign_in_with_code(&pool, &argon2, upn, "000000", None)
                .await
                .unwrap(),
            Outcome::Locked
        );
    });
    let (ok, shown, _) = run(&["admin", "user", "show", "--upn", upn]);
    assert!(
        ok && shown.contains(
            "offline fallback: backup codes 0 of 0 unused, locked after 10 wrong codes in a row"
        ),
        "{shown}"
    );
    let (ok, out, _) = run(&["admin", "fallback", "unlock", "--upn", upn]);
    assert!(ok && out.contains("fallback tries reset"), "{out}");
    let (_, shown, _) = run(&["admin", "user", "show", "--upn", upn]);
    assert!(
        shown.contains("backup codes 0 of 0 unused, 0 wrong codes in a row"),
        "{shown}"
    );
    let (ok, _, err) = run(&[
        "admin",
        "fallback",
        "unlock",
        "--upn",
        "nobody@contoso.test",
    ]);
    assert!(!ok && err.contains("no user"), "{err}");
    let (ok, audit, _) = run(&["admin", "audit", "--event", "fallback_unlocked"]);
    assert!(
        ok && audit.contains("outcome=ok") && audit.contains("nothing_to_reset"),
        "{audit}"
    );
}

/// Issue 20, finding 2: backup-code tries (19 MiB of Argon2 each) share the password checks'
/// bound: 24 concurrent tries with unknown user names never run more hashes at once than it
/// allows (the memory they can take is the bound's), and every try is still checked.
#[tokio::test]
async fn concurrent_backup_code_tries_never_run_more_argon2_hashes_at_once_than_the_bound() {
    let h = harness_with_state(90, |s| {
        s.with_password_limits(signin_domain::accounts::passwords::PasswordLimits {
            concurrency: 2,
            ..Default::default()
        })
    })
    .await;
    fallback::set_enabled(&h.state.pool, true).await.unwrap();
    let tries: Vec<_> = (0..24)
        .map(|i| {
            let pool = h.state.pool.clone();
            let argon2 = h.state.passwords.clone();
            tokio::spawn(async move {
                let upn = format!("nobody{i}@contoso.test");
                fallback::sign_in_with_code(&pool, &argon2, &upn, "abcd-efgh-jkmn", None)
                    .await
                    .unwrap()
            })
        })
        .collect();
    for t in tries {
        assert_eq!(t.await.unwrap(), Outcome::Refused);
    }
    let stats = h.state.passwords.stats();
    assert_eq!(stats.hashes, 24, "every try hashed");
    assert!(stats.max_in_flight <= 2, "{} at once", stats.max_in_flight);
}

/// Issue 20, finding 6: one address trying codes for made-up users (each with its own per-user
/// budget) is bounded per address like password attempts, and its throttled tries are one
/// counted audit entry instead of a row each.
#[tokio::test]
async fn one_address_spraying_made_up_users_is_throttled_and_collapses_into_one_audit_entry() {
    let h = harness().await;
    fallback::set_enabled(&h.state.pool, true).await.unwrap();
    let ip: std::net::IpAddr = "198.51.100.7".parse().unwrap();
    let mut throttled = 0;
    for i in 0..200 {
        let upn = format!("spray{i}@contoso.test");
        match fallback::sign_in_with_code(
            &h.state.pool,
            &h.state.passwords,
            &upn,
            "000000",
            Some(ip),
        )
        .await
        .unwrap()
        {
            Outcome::Throttled { retry_after_secs } => {
                assert!(retry_after_secs >= 1);
                throttled += 1;
            }
            Outcome::Refused => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let burst = signin_domain::accounts::passwords::IP_ATTEMPT_BURST as usize;
    assert!(
        throttled >= 200 - burst - 2,
        "only {throttled} of 200 were throttled"
    );

    let rows: Vec<_> = audit::list(&h.state.pool)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.event == "fallback_used")
        .collect();
    assert!(
        rows.len() <= burst + 3,
        "{} audit rows for 200 tries",
        rows.len()
    );
    let collapsed: Vec<_> = rows
        .iter()
        .filter(|r| r.outcome.starts_with("throttled address="))
        .collect();
    assert_eq!(collapsed.len(), 1, "{collapsed:?}");
    assert_eq!(collapsed[0].upn, None, "the entry names no made-up user");
    assert_eq!(collapsed[0].repeats + 1, throttled as i64);
    assert!(
        !collapsed[0].outcome.contains("198.51.100.7"),
        "the address itself is not stored"
    );

    // Another address has its own budget.
    let other: std::net::IpAddr = "203.0.113.9".parse().unwrap();
    let r = fallback::sign_in_with_code(
        &h.state.pool,
        &h.state.passwords,
        "spray0@contoso.test",
        "000000",
        Some(other),
    )
    .await
    .unwrap();
    assert!(matches!(r, Outcome::Refused), "{r:?}");
}

/// Issue 22, item 1: "Other ways to sign in" (the number, denied, expired and failed pages)
/// lists exactly the ways the user has now and the policy allows: each appears with the
/// method, goes with the policy that allows it, and another user's methods never count.
#[tokio::test]
async fn other_ways_list_exactly_what_the_user_has_and_the_policy_allows() {
    use signin_domain::accounts::methods::{other_ways, OtherWays};
    use signin_domain::accounts::{self, passwords, temporary_pass};
    use signin_domain::rules::policy::{Mode, PolicyUpdate, Target};

    let h = harness().await;
    let pool = &h.state.pool;
    let set_mode = |mode: Mode| PolicyUpdate {
        enabled: Some(true),
        target: Some(Target::All),
        mode: Some(mode),
        number_matching: Some(true),
        ..PolicyUpdate::default()
    };
    accounts::set_policy(pool, &set_mode(Mode::Any))
        .await
        .unwrap();
    let upn = "carol@contoso.test";
    let (phone, _totp) = enrolled(&h, upn).await;
    // A phone without phone sign-in, the fallback off (its default), no pass, no password.
    assert_eq!(other_ways(pool, upn).await.unwrap(), OtherWays::default());
    // Another user's pass and password are not Carol's.
    h.add_user("dave@contoso.test", &[]).await;
    temporary_pass::issue(pool, "dave@contoso.test", 3600)
        .await
        .unwrap();
    passwords::set_password(pool, "dave@contoso.test", "dave's password 1")
        .await
        .unwrap();
    assert_eq!(other_ways(pool, upn).await.unwrap(), OtherWays::default());

    let r = phone.enable_passwordless(&h).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    fallback::set_enabled(pool, true).await.unwrap();
    temporary_pass::issue(pool, upn, 3600).await.unwrap();
    passwords::set_password(pool, upn, "carol's password 1")
        .await
        .unwrap();
    let every_way = OtherWays {
        phone: true,
        temporary_pass: true,
        code: true,
        password: true,
    };
    assert_eq!(other_ways(pool, upn).await.unwrap(), every_way);

    // The fallback switched off: no code. Phone sign-in only (no push after a password):
    // no password.
    fallback::set_enabled(pool, false).await.unwrap();
    accounts::set_policy(pool, &set_mode(Mode::Passwordless))
        .await
        .unwrap();
    assert_eq!(
        other_ways(pool, upn).await.unwrap(),
        OtherWays {
            code: false,
            password: false,
            ..every_way
        }
    );
}
