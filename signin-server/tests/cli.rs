//! The `signin-server` binary: the CLI interface other tests rely on.
mod support;

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use authenticator_protocol::enroll::EnrollmentUrl;
use signin_domain::store::testing::TestDatabase;

const BIN: &str = env!("CARGO_BIN_EXE_signin-server");

fn cmd(db: &str, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--database")
        .arg(db)
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
}

#[test]
fn admin_commands() {
    let test_db = TestDatabase::create_blocking().unwrap();
    let db = test_db.url.clone();
    let add = [
        "admin",
        "user",
        "add",
        "--upn",
        "bob@contoso.test",
        "--name",
        "Bob",
        "--group",
        "pilot",
    ];
    assert!(cmd(&db, &add).status.success());
    let again = cmd(&db, &add);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let bad = cmd(
        &db,
        &[
            "admin",
            "policy",
            "set",
            "--mode",
            "passwordless",
            "--number-matching",
            "off",
        ],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("number matching"));
    let set = cmd(
        &db,
        &[
            "admin",
            "policy",
            "set",
            "--target",
            "group:pilot",
            "--show-location",
            "off",
            "--exclude",
            "kiosks, contractors",
            "--show-app-name-to",
            "group:pilot",
            "--show-location-except",
            "kiosks",
        ],
    );
    assert!(set.status.success());
    let shown = String::from_utf8(cmd(&db, &["admin", "policy", "show"]).stdout).unwrap();
    assert!(shown.contains("target: group:pilot") && shown.contains("show-location: off"));
    assert!(shown.contains("exclude: kiosks, contractors\n"), "{shown}");
    assert!(
        shown.contains("show-app-name-to: group:pilot\n")
            && shown.contains("show-location-except: kiosks\n"),
        "{shown}"
    );
    assert!(cmd(&db, &["admin", "policy", "set", "--exclude", ""])
        .status
        .success());
    let shown = String::from_utf8(cmd(&db, &["admin", "policy", "show"]).stdout).unwrap();
    assert!(shown.contains("exclude: (none)\n"), "{shown}");
    assert!(
        shown.contains("mode: any") && shown.contains("enabled: true"),
        "{shown}"
    );

    let link = cmd(
        &db,
        &["admin", "registration-link", "--upn", "bob@contoso.test"],
    );
    assert!(link.status.success());
    let out = String::from_utf8(link.stdout).unwrap();
    assert_eq!(out.lines().count(), 1, "only the URL on stdout: {out}");
    let url = EnrollmentUrl::parse(out.trim()).unwrap();
    assert_eq!(url.server.as_str(), "http://127.0.0.1:8080/");
    // Logs never carry the code.
    assert!(!String::from_utf8_lossy(&link.stderr).contains(&url.code));
    // The same server key on every run.
    let out2 = cmd(
        &db,
        &["admin", "registration-link", "--upn", "bob@contoso.test"],
    )
    .stdout;
    let url2 = EnrollmentUrl::parse(String::from_utf8(out2).unwrap().trim()).unwrap();
    assert_eq!(url2.server_fingerprint, url.server_fingerprint);
    assert_ne!(url2.code, url.code);
    assert!(
        !cmd(&db, &["admin", "registration-link", "--upn", "nobody@x"])
            .status
            .success()
    );

    let audit = String::from_utf8(cmd(&db, &["admin", "audit"]).stdout).unwrap();
    assert!(audit.contains("user_added") && audit.contains("registration_link_issued"));
    assert!(!audit.contains(&url.code));
}

#[test]
fn serve_prints_its_address_and_stops_on_sigterm() {
    let test_db = TestDatabase::create_blocking().unwrap();
    let db = test_db.url.clone();
    let mut server = support::ServerProcess::start(&db, &["--server-name", "Fabrikam"]);
    let addr = server.addr.clone();

    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");

    let killed = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    // `--server-name` was stored.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let name = rt.block_on(async {
        let pool = signin_domain::store::connect(&db).await.unwrap();
        signin_domain::store::server_name(&pool).await.unwrap()
    });
    assert_eq!(name, "Fabrikam");
}

/// A plain `GET` on a running server: (status line, body).
fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.lines().next().unwrap_or_default().to_owned();
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn the_statement_counter_is_off_by_default_and_counts_the_queries_of_a_request_when_asked() {
    let test_db = TestDatabase::create_blocking().unwrap();
    let plain = support::ServerProcess::start(&test_db.url, &[]);
    let (status, _) = http_get(&plain.addr, "/debug/statements");
    assert!(status.starts_with("HTTP/1.1 404"), "{status}");
    drop(plain);

    let counting = support::ServerProcess::start_with_env(
        &test_db.url,
        &[],
        &[("SIGNIN_COUNT_STATEMENTS", "1")],
    );
    let count = || -> u64 {
        let (status, body) = http_get(&counting.addr, "/debug/statements");
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        body.trim().parse().unwrap()
    };
    let before = count();
    // Not a database request: the count stays.
    assert_eq!(count(), before);
    // The JWKS reads the signing keys from the database: at least one query.
    let (status, _) = http_get(&counting.addr, "/oauth2/jwks");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(count() > before, "the JWKS request's queries were counted");
}

#[test]
fn log_lines_written_through_the_background_writer_are_all_flushed_when_the_server_stops() {
    let test_db = TestDatabase::create_blocking().unwrap();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            &test_db.url,
        ])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("signin-server listening on http://")
        .unwrap()
        .to_owned();
    for _ in 0..50 {
        http_get(&addr, "/healthz");
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(log.path()).unwrap();
    // One access line per request, every one of them written, and the last line of all.
    assert_eq!(text.matches("route=/healthz").count(), 50, "{text}");
    assert!(text.contains("shutting down"), "{text}");
}

#[test]
fn user_show_resume_and_delivery_flags() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("cli.db").display());
    let add = [
        "admin",
        "user",
        "add",
        "--upn",
        "eve@contoso.test",
        "--name",
        "Eve",
    ];
    assert!(cmd(&db, &add).status.success());
    let show = cmd(&db, &["admin", "user", "show", "--upn", "eve@contoso.test"]);
    assert!(show.status.success());
    let text = String::from_utf8(show.stdout).unwrap();
    for line in [
        "upn: eve@contoso.test",
        "risk: low (score 0, reports 0)",
        "paused: no",
        "rate limit: ok",
        "devices: none",
    ] {
        assert!(text.contains(line), "{line:?} in {text}");
    }
    let resume = cmd(
        &db,
        &["admin", "user", "resume", "--upn", "eve@contoso.test"],
    );
    assert!(String::from_utf8_lossy(&resume.stdout).contains("was not paused"));
    let missing = cmd(
        &db,
        &["admin", "user", "show", "--upn", "nobody@contoso.test"],
    );
    assert!(!missing.status.success());

    // Incomplete or unreadable push settings stop `serve` with a clear error.
    let serve = |extra: &[&str]| {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let out = cmd(&db, &args);
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(serve(&["--apns-key", "/nonexistent/key.p8"]).contains("--apns-key-id"));
    let err = serve(&[
        "--apns-key",
        "/nonexistent/key.p8",
        "--apns-key-id",
        "K",
        "--apns-team-id",
        "T",
        "--apns-topic",
        "com.example",
    ]);
    assert!(err.contains("reading the APNs key"), "{err}");
    assert!(serve(&["--fcm-project-id", "p"]).contains("--fcm-service-account"));
    assert!(serve(&["--trusted-proxy", "not-an-ip"]).contains("not an IP address"));
    let err = serve(&["--geoip", "/nonexistent/city.mmdb"]);
    assert!(err.contains("GeoIP database"), "{err}");
}

// ---- the admin commands of review issue 8 ----

use authenticator_protocol::sign_in::Decision;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;
use signin_domain::{accounts, audit, store};
use support::{basic_auth, respond_uri, Harness, Phone};

/// Runs a command that must succeed: its stdout.
fn ok(db: &str, args: &[&str]) -> String {
    let out = cmd(db, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail, printing nothing on stdout: its stderr.
fn fails(db: &str, args: &[&str]) -> String {
    let out = cmd(db, args);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "{args:?}: nothing on stdout"
    );
    String::from_utf8(out.stderr).unwrap()
}

/// Whether `text` holds a character a terminal would act on (other than line ends).
fn has_raw_control(text: &str) -> bool {
    text.chars()
        .any(|c| c != '\n' && authenticator_protocol::text::is_unsafe_char(c))
}

async fn start_as(h: &Harness, auth: &str, upn: &str) -> support::Reply {
    h.send(
        Request::post("/api/v1/signin")
            .header("content-type", "application/json")
            .header("authorization", auth)
            .body(Body::from(json!({ "upn": upn }).to_string()))
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn temporary_pass_prints_one_working_pass_on_stdout_and_refuses_unknown_users_and_bad_ttls() {
    let h = support::harness().await;
    let db = h.db.url.clone();
    h.add_user("newbie@contoso.test", &[]).await;
    let upn = [
        "admin",
        "user",
        "temporary-pass",
        "--upn",
        "newbie@contoso.test",
    ];
    let out = cmd(&db, &upn);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.lines().count(),
        1,
        "only the pass on stdout: {stdout}"
    );
    let pass = stdout.trim().to_owned();
    assert_eq!(pass.len(), 22, "128 random bits, base64url: {pass}");
    assert!(pass
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.contains(&pass), "logs never carry the pass");
    assert!(stderr.contains("Single use"), "{stderr}");
    let second = ok(&db, &upn);
    assert_ne!(second.trim(), pass, "a new pass each time");

    // Refused: an unknown user, a lifetime of 0, above 8 hours, or not a number.
    let err = fails(
        &db,
        &[
            "admin",
            "user",
            "temporary-pass",
            "--upn",
            "nobody@contoso.test",
        ],
    );
    assert!(err.contains("no user nobody@contoso.test"), "{err}");
    for ttl in ["0", "28801"] {
        let mut args = upn.to_vec();
        args.extend(["--ttl-secs", ttl]);
        let err = fails(&db, &args);
        assert!(
            err.contains("--ttl-secs must be 1 to 28800"),
            "{ttl}: {err}"
        );
    }
    for ttl in ["-5", "ten"] {
        let mut args = upn.to_vec();
        args.extend(["--ttl-secs", ttl]);
        let err = fails(&db, &args);
        assert!(err.contains(ttl), "{ttl}: {err}");
    }
    let mut longest = upn.to_vec();
    longest.extend(["--ttl-secs", "28800"]);
    ok(&db, &longest);

    // The printed pass is the one stored: it works once.
    let pool = &h.state.pool;
    assert!(
        accounts::temporary_pass::redeem(pool, "newbie@contoso.test", &pass)
            .await
            .unwrap()
    );
    assert!(
        !accounts::temporary_pass::redeem(pool, "newbie@contoso.test", &pass)
            .await
            .unwrap()
    );
    // Three issued (the refusals stored nothing), audited without the pass.
    let issued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM temporary_passes")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(issued, 3);
    let log = ok(&db, &["admin", "audit", "--event", "temporary_pass_issued"]);
    // The two identical issues within a minute are one line with a repeat count.
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(lines[0].contains("upn=newbie@contoso.test outcome=ttl_secs=3600 repeats=1"));
    assert!(lines[1].contains("upn=newbie@contoso.test outcome=ttl_secs=28800"));
    let all = ok(&db, &["admin", "audit"]);
    assert!(!all.contains(&pass) && !all.contains(second.trim()));
}

#[tokio::test]
async fn admin_app_add_prints_the_secret_once_list_never_shows_it_and_remove_revokes_the_credential(
) {
    let h = support::harness().await;
    let db = h.db.url.clone();
    let _phone = h.ready_phone("bobby@contoso.test").await;
    let out = cmd(&db, &["admin", "app", "add", "--name", "Contoso Intranet"]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} in {stdout}"))
            .trim()
            .to_owned()
    };
    let (client_id, secret) = (field("client_id:"), field("client_secret:"));
    assert!(client_id.starts_with("app-"), "{client_id}");
    assert!(secret.len() >= 43, "256 random bits: {secret}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&secret));
    let auth = basic_auth(&client_id, &secret);

    // The credential starts sign-ins, and the phone shows the registered name.
    let r = start_as(&h, &auth, "bobby@contoso.test").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let details: String = sqlx::query_scalar("SELECT details FROM signin_requests WHERE id = $1")
        .bind(r.body["id"].as_str().unwrap())
        .fetch_one(&h.state.pool)
        .await
        .unwrap();
    assert!(
        details.contains("\"app_name\":\"Contoso Intranet\""),
        "{details}"
    );

    // The list: the built-in portal and the applications, never a secret (nor its hash).
    let list = ok(&db, &["admin", "app", "list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("signin-portal Sign-in portal (built-in")),
        "{list}"
    );
    assert!(list
        .lines()
        .any(|l| l == format!("{client_id} Contoso Intranet")));
    assert!(list.contains("My Apps"));
    let hash = authenticator_protocol::encoding::b64(&authenticator_protocol::encoding::sha256(
        secret.as_bytes(),
    ));
    assert!(!list.contains(&secret) && !list.contains(&hash));

    // Removed: the credential stops working at once.
    let removed = ok(&db, &["admin", "app", "remove", "--client-id", &client_id]);
    assert!(removed.contains(&client_id));
    let r = start_as(&h, &auth, "bobby@contoso.test").await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    assert!(r.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic "));
    assert!(!ok(&db, &["admin", "app", "list"]).contains("Contoso Intranet"));
    let err = fails(&db, &["admin", "app", "remove", "--client-id", &client_id]);
    assert!(err.contains("no application"), "{err}");
    // The other applications keep working.
    assert_eq!(
        h.start_signin("bobby@contoso.test").await.status,
        StatusCode::OK
    );

    // Audited, by client id, never the secret.
    let log = ok(&db, &["admin", "audit"]);
    assert!(log.contains(&format!("application_added outcome=client_id={client_id}")));
    assert!(log.contains(&format!(
        "application_removed outcome=client_id={client_id}"
    )));
    assert!(!log.contains(&secret));
}

#[test]
fn admin_app_add_refuses_duplicate_and_unsafe_names_and_the_portal_cannot_be_removed() {
    let test_db = TestDatabase::create_blocking().unwrap();
    let db = test_db.url.clone();
    ok(&db, &["admin", "app", "add", "--name", "Payroll"]);
    for same in ["Payroll", "  Payroll  "] {
        let err = fails(&db, &["admin", "app", "add", "--name", same]);
        assert!(err.contains("already registered"), "{same:?}: {err}");
    }
    // A caller once printed a fake location line above the real one: no such names.
    // Nor names that look like another (issue 20, finding 5): invisible, format, private-use.
    for (name, code) in [
        ("Mail\nLocation: Seattle, US", "U+000A"),
        ("Mail\u{1b}[2K", "U+001B"),
        ("Mail\u{202e}gnp.exe", "U+202E"),
        ("Pay\u{200b}roll", "U+200B"),
        ("Pay\u{ad}roll", "U+00AD"),
        ("Payroll\u{e000}", "U+E000"),
    ] {
        let err = fails(&db, &["admin", "app", "add", "--name", name]);
        assert!(
            err.contains(&format!("--name holds {code}"))
                && err.contains(
                    "a name may hold no control, format, private-use or unassigned character"
                ),
            "{name:?}: {err}"
        );
    }
    for bad in ["   ", &"n".repeat(129)] {
        assert!(fails(&db, &["admin", "app", "add", "--name", bad]).contains("1 to 128"));
    }
    let list = ok(&db, &["admin", "app", "list"]);
    assert_eq!(
        list.lines().count(),
        2,
        "only the portal and Payroll: {list}"
    );
    assert!(!has_raw_control(&list));

    let err = fails(
        &db,
        &["admin", "app", "remove", "--client-id", "signin-portal"],
    );
    assert!(err.contains("cannot be removed"), "{err}");
    assert!(ok(&db, &["admin", "app", "list"]).contains("signin-portal"));
}

/// `phone`'s one pending request.
async fn pending_on(h: &Harness, phone: &Phone) -> String {
    let p = phone.poll(h, 0).await;
    let pushes = p.body["pushes"].as_array().unwrap();
    assert_eq!(pushes.len(), 1, "{:?}", p.body);
    pushes[0]["rid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn admin_device_remove_refuses_the_removed_phones_answers_and_polls_while_another_phone_answers(
) {
    let h = support::harness().await;
    let db = h.db.url.clone();
    let upn = "bobby@contoso.test";
    let a = h.ready_phone(upn).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let mut b = Phone::new();
    b.enroll(&h, &h.link(upn, 600).await).await;
    assert_eq!(
        b.enable_passwordless(&h).await.status,
        StatusCode::NO_CONTENT
    );
    let (id_a, id_b) = (a.account().as_str(), b.account().as_str());

    let list = ok(&db, &["admin", "device", "list", "--upn", upn]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(lines[0].starts_with(&format!("device {id_a} (Test Phone): enrolled ")));
    assert!(lines[1].starts_with(&format!("device {id_b} (Test Phone): enrolled ")));
    assert!(
        lines.iter().all(|l| l.ends_with("phone sign-in on")),
        "{list}"
    );

    // One sign-in, one request on each phone; A (enrolled first) holds the sign-in's id.
    let r = h.start_signin(upn).await;
    let signin = r.body["id"].as_str().unwrap().to_owned();
    let number = r.body["number"].as_str().unwrap().to_owned();
    let on_a = pending_on(&h, &a).await;
    let on_b = pending_on(&h, &b).await;
    assert_eq!(on_a, signin);
    let fa = a.fetch(&h, &on_a).await.unwrap();
    let fb = b.fetch(&h, &on_b).await.unwrap();

    // A stolen phone, say: removed.
    let out = ok(&db, &["admin", "device", "remove", "--id", id_a]);
    assert_eq!(out.trim(), format!("removed device {id_a}"));
    let r = h
        .post(
            &respond_uri(&on_a),
            a.answer(&fa, Decision::Approve, Some(&number)),
        )
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::NOT_FOUND, "unknown_request"),
        "A's answer"
    );
    let e = a.fetch(&h, &on_a).await.err().expect("A's details refused");
    assert_eq!(
        (e.status, e.error()),
        (StatusCode::NOT_FOUND, "unknown_account")
    );
    let p = a.poll(&h, 0).await;
    assert_eq!(
        (p.status, p.error()),
        (StatusCode::NOT_FOUND, "unknown_account")
    );
    let left: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM signin_requests WHERE account_id = $1")
            .bind(id_a)
            .fetch_one(&h.state.pool)
            .await
            .unwrap();
    assert_eq!(left, 0, "A's pending request is gone");

    // B answers the same sign-in.
    assert_eq!(
        h.get(&format!("/api/v1/signin/{signin}"), None).await.body["status"],
        "pending"
    );
    let r = h
        .post(
            &respond_uri(&on_b),
            b.answer(&fb, Decision::Approve, Some(&number)),
        )
        .await;
    assert_eq!(r.body, json!({"status": "approved"}), "{:?}", r.body);
    assert_eq!(
        h.get(&format!("/api/v1/signin/{signin}"), None).await.body["status"],
        "approved"
    );
    // The next sign-in goes to B alone.
    let next = h.start_signin(upn).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(pending_on(&h, &b).await, next);
    let requests: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM signin_requests WHERE signin_id = $1")
            .bind(&next)
            .fetch_one(&h.state.pool)
            .await
            .unwrap();
    assert_eq!(requests, 1);

    let list = ok(&db, &["admin", "device", "list", "--upn", upn]);
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.contains(id_b) && !list.contains(id_a));

    // Unknown ids and users fail clearly.
    for id in [id_a, "not-a-device"] {
        let err = fails(&db, &["admin", "device", "remove", "--id", id]);
        assert!(err.contains(&format!("no device {id}")), "{err}");
    }
    let err = fails(
        &db,
        &["admin", "device", "list", "--upn", "nobody@contoso.test"],
    );
    assert!(err.contains("no user nobody@contoso.test"), "{err}");

    // Audited once, with the user and the device.
    let rows: Vec<_> = audit::list(&h.state.pool)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.event == "device_removed")
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].upn.as_deref(), Some(upn));
    assert_eq!(rows[0].account_id.as_deref(), Some(id_a));
    assert_eq!(rows[0].repeats, 0);
}

async fn append_at(h: &Harness, at: i64, event: &str, upn: &str, outcome: &str) {
    store::audit::append(
        &h.state.pool,
        store::audit::NewAuditRow {
            at,
            event,
            upn: Some(upn),
            account_id: None,
            request_id: None,
            outcome,
            actor: "system",
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn admin_audit_filters_by_user_event_and_time_and_refuses_a_malformed_time() {
    let h = support::harness().await;
    let db = h.db.url.clone();
    let day = |d: &str| signin_server::web::admin::parse_time(d).unwrap();
    let (jan1, jan2, jan3) = (day("2026-01-01"), day("2026-01-02"), day("2026-01-03"));
    for (at, event, upn, outcome) in [
        (
            jan1 + 1000,
            "rate_limited",
            "bobby@contoso.test",
            "blocked-one",
        ),
        (
            jan2 + 1000,
            "rate_limited",
            "bobby@contoso.test",
            "blocked-two",
        ),
        (jan2 + 2000, "web_signin", "bobby@contoso.test", "password"),
        (
            jan2 + 3000,
            "rate_limited",
            "eve@contoso.test",
            "blocked-three",
        ),
        (
            jan3 + 1000,
            "rate_limited",
            "bobby@contoso.test",
            "blocked-four",
        ),
    ] {
        append_at(&h, at, event, upn, outcome).await;
    }
    let outcomes = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["admin", "audit"];
        all.extend_from_slice(args);
        ok(&db, &all)
            .lines()
            .map(|l| {
                let rest = l.rsplit_once("outcome=").unwrap().1;
                rest.split(" by=").next().unwrap().to_owned()
            })
            .collect()
    };
    assert_eq!(
        outcomes(&["--upn", "bobby@contoso.test"]),
        ["blocked-one", "blocked-two", "password", "blocked-four"],
        "the user's entries, oldest first"
    );
    assert_eq!(
        outcomes(&["--event", "rate_limited"]),
        [
            "blocked-one",
            "blocked-two",
            "blocked-three",
            "blocked-four"
        ]
    );
    assert_eq!(
        outcomes(&[
            "--upn",
            "bobby@contoso.test",
            "--event",
            "rate_limited",
            "--since",
            "2026-01-02",
            "--until",
            "2026-01-03",
        ]),
        ["blocked-two"]
    );
    assert_eq!(
        outcomes(&[
            "--since",
            "2026-01-02T00:00:02Z",
            "--until",
            "2026-01-02T00:00:03Z"
        ]),
        ["password"]
    );
    assert_eq!(
        outcomes(&["--since", "2026-01-03", "--until", "2026-01-04"]),
        ["blocked-four"],
        "only that day's entry"
    );
    assert!(outcomes(&["--upn", "nobody@contoso.test"]).is_empty());

    // Every line names its actor.
    assert!(ok(&db, &["admin", "audit", "--upn", "eve"])
        .trim_end()
        .ends_with("outcome=blocked-three by=system"));
    // A part of the name, any case.
    assert_eq!(
        outcomes(&["--upn", "EVE@"]),
        ["blocked-three"],
        "a part of the name"
    );

    for (flag, bad) in [
        ("--since", "yesterday"),
        ("--until", "2026-13-01"),
        ("--since", "02/01/2026"),
    ] {
        let err = fails(&db, &["admin", "audit", flag, bad]);
        assert!(
            err.contains(&format!("{flag} must be YYYY-MM-DD or RFC 3339")),
            "{flag} {bad}: {err}"
        );
    }
}

#[tokio::test]
async fn names_with_control_characters_are_refused_and_text_others_wrote_is_printed_escaped() {
    let h = support::harness().await;
    let db = h.db.url.clone();
    // What an admin types is refused when a terminal, a page or the phone would act on it.
    for (flag, value) in [
        ("--name", "Bobby\u{1b}[2J"),
        ("--name", "Bobby\nupn: admin@contoso.test"),
        ("--name", "Bobby \u{202e}nimda"),
        ("--name", "Bob\u{200b}by"),
        ("--name", "Bobby\u{feff}"),
        ("--upn", "bobby\u{1b}@contoso.test"),
        ("--upn", "bob\u{200d}by@contoso.test"),
    ] {
        let mut args = vec![
            "admin",
            "user",
            "add",
            "--upn",
            "bobby@contoso.test",
            "--name",
            "Bobby",
        ];
        let at = args.iter().position(|a| *a == flag).unwrap() + 1;
        args[at] = value;
        let err = fails(&db, &args);
        assert!(
            err.contains(&format!("{flag} holds U+"))
                && err.contains(
                    "a name may hold no control, format, private-use or unassigned character"
                ),
            "{value:?}: {err}"
        );
    }
    let err = fails(
        &db,
        &["admin", "user", "show", "--upn", "bobby@contoso.test"],
    );
    assert!(err.contains("no user"), "nothing was added: {err}");
    let err = fails(
        &db,
        &[
            "admin",
            "user",
            "add",
            "--upn",
            "bobby@contoso.test",
            "--name",
            "Bobby",
            "--group",
            "pilot\nadmins",
        ],
    );
    assert!(err.contains("--group holds U+000A"), "{err}");

    // Text that arrives from elsewhere (an outcome, a device's own name) is printed escaped.
    let _phone = h.ready_phone("bobby@contoso.test").await;
    let before = ok(&db, &["admin", "audit"]).lines().count();
    let outcome = "evil\u{1b}[2J\n1 2026-01-01T00:00:00Z user_added upn=fake@contoso.test";
    audit::record(
        &h.state.pool,
        audit::Event::RateLimited,
        audit::Entry {
            upn: Some("bobby@contoso.test"),
            outcome,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let log = ok(&db, &["admin", "audit"]);
    assert!(!has_raw_control(&log), "{log:?}");
    assert_eq!(log.lines().count(), before + 1, "one entry, one line");
    assert!(
        log.contains("outcome=evil\\u{1b}[2J\\u{a}1 2026-01-01T00:00:00Z user_added"),
        "{log}"
    );
    let filtered = ok(&db, &["admin", "audit", "--event", "rate_limited"]);
    assert_eq!(filtered.lines().count(), 1);
    assert!(filtered.contains("\\u{1b}[2J\\u{a}") && !has_raw_control(&filtered));

    sqlx::query("UPDATE devices SET device_name = $1 WHERE upn = $2")
        .bind("Phone\u{1b}]0;pwned\u{7}\nSTALE")
        .bind("bobby@contoso.test")
        .execute(&h.state.pool)
        .await
        .unwrap();
    let escaped_name = "(Phone\\u{1b}]0;pwned\\u{7}\\u{a}STALE)";
    let list = ok(
        &db,
        &["admin", "device", "list", "--upn", "bobby@contoso.test"],
    );
    assert_eq!(list.lines().count(), 1, "{list:?}");
    assert!(list.contains(escaped_name), "{list}");
    assert!(!has_raw_control(&list));
    let show = ok(
        &db,
        &["admin", "user", "show", "--upn", "bobby@contoso.test"],
    );
    assert!(show.contains(escaped_name), "{show}");
    assert!(!has_raw_control(&show), "{show:?}");
    assert_eq!(
        show.lines().filter(|l| l.starts_with("device ")).count(),
        1,
        "{show}"
    );
}

/// Issue 19: user names compare ignoring case (`Upn`, stored in lower case). A database from
/// before that holds two users who differ only by case makes every command but the rename
/// refuse, naming both and the command; after the rename, the remaining mixed-case names are
/// lowered at start with everything of theirs (groups here).
#[test]
fn users_who_differ_only_by_case_stop_the_server_until_one_is_renamed() {
    let test_db = TestDatabase::create_blocking().unwrap();
    let db = test_db.url.clone();
    ok(
        &db,
        &[
            "admin",
            "user",
            "add",
            "--upn",
            "bob@contoso.test",
            "--name",
            "Bob",
        ],
    );
    // Rows as a server before the rule could have written them.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let pool = signin_domain::store::connect(&db).await.unwrap();
        for upn in ["Bob@Contoso.test", "Carol@Contoso.test"] {
            sqlx::query("INSERT INTO users (upn, display_name, created_at) VALUES ($1, $2, 0)")
                .bind(upn)
                .bind("Someone")
                .execute(&pool)
                .await
                .unwrap();
        }
        sqlx::query("INSERT INTO user_groups (upn, group_name) VALUES ($1, 'pilots')")
            .bind("Carol@Contoso.test")
            .execute(&pool)
            .await
            .unwrap();
    });
    let refused = fails(
        &db,
        &["admin", "user", "show", "--upn", "carol@contoso.test"],
    );
    assert!(
        refused.contains("Bob@Contoso.test, bob@contoso.test")
            && refused.contains("admin user rename --upn OLD --new-upn NEW"),
        "{refused}"
    );
    let out = ok(
        &db,
        &[
            "admin",
            "user",
            "rename",
            "--upn",
            "Bob@Contoso.test",
            "--new-upn",
            "Robert@Contoso.test",
        ],
    );
    assert_eq!(out, "renamed Bob@Contoso.test to robert@contoso.test\n");
    // Carol is lowered at this start, with her group; found in any case.
    let shown = ok(
        &db,
        &["admin", "user", "show", "--upn", "CAROL@contoso.test"],
    );
    assert!(
        shown.contains("carol@contoso.test") && shown.contains("pilots"),
        "{shown}"
    );
    let refused = fails(
        &db,
        &[
            "admin",
            "user",
            "add",
            "--upn",
            "ROBERT@contoso.test",
            "--name",
            "R",
        ],
    );
    assert!(refused.contains("already exists"), "{refused}");
}

/// `admin device approve`: a device that awaits approval gets sign-ins once an admin approves
/// it (audited); a device that does not wait is refused with a message.
#[tokio::test]
async fn admin_device_approve_releases_a_held_device() {
    let h = support::harness().await;
    let db = h.db.url.clone();
    let upn = "bobby@contoso.test";
    signin_domain::accounts::set_policy(
        &h.state.pool,
        &signin_domain::rules::policy::PolicyUpdate {
            new_device_approval: Some(true),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let first = h.ready_phone(upn).await;
    let mut second = Phone::new();
    second.enroll(&h, &h.link(upn, 600).await).await;
    let held = || async {
        signin_domain::store::devices::of_user(&h.state.pool, upn)
            .await
            .unwrap()[1]
            .awaiting_approval
    };
    assert!(held().await);
    let id = second.account().as_str().to_owned();
    let out = ok(&db, &["admin", "device", "approve", "--id", &id]);
    assert_eq!(out.trim(), format!("approved device {id}"));
    assert!(!held().await);
    let err = fails(&db, &["admin", "device", "approve", "--id", &id]);
    assert!(err.contains("is not awaiting approval"), "{err}");
    let err = fails(
        &db,
        &[
            "admin",
            "device",
            "approve",
            "--id",
            first.account().as_str(),
        ],
    );
    assert!(err.contains("is not awaiting approval"), "{err}");
}

#[tokio::test]
async fn admin_audit_exports_csv_and_json_naming_the_actor() {
    let h = support::harness().await;
    let db = h.db.url.clone();
    ok(
        &db,
        &[
            "admin",
            "user",
            "add",
            "--upn",
            "carol@contoso.test",
            "--name",
            "Carol, \"C\"",
        ],
    );
    append_at(&h, 1000, "rate_limited", "=cmd@contoso.test", "blocked").await;

    let csv = ok(&db, &["admin", "audit", "--format", "csv"]);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("seq,at,event,actor,upn,account_id,request_id,outcome,repeats,last_at")
    );
    let rows: Vec<&str> = lines.collect();
    assert!(
        rows.iter()
            .any(|l| l.contains(",user_added,cli,carol@contoso.test,")),
        "{csv}"
    );
    // A name that starts like a spreadsheet formula is defused.
    assert!(
        rows.iter()
            .any(|l| l.contains(",system,'=cmd@contoso.test,")),
        "{csv}"
    );

    let json: serde_json::Value = serde_json::from_str(&ok(
        &db,
        &["admin", "audit", "--format", "json", "--actor", "cli"],
    ))
    .unwrap();
    let entries = json.as_array().unwrap();
    assert!(!entries.is_empty());
    assert!(entries.iter().all(|e| e["actor"] == "cli"));
    let added = entries.iter().find(|e| e["event"] == "user_added").unwrap();
    assert_eq!(added["upn"], "carol@contoso.test");
    assert!(added["at"].as_str().unwrap().ends_with('Z'));

    let err = fails(&db, &["admin", "audit", "--format", "xml"]);
    assert!(err.contains("xml"), "{err}");
}

/// The running server keeps copies of the policy, applications and groups (issue 24); the
/// admin CLI is another process. Each change it makes is seen by the server's very next
/// sign-in start, with the copies warm from the start before.
#[tokio::test]
async fn policy_and_group_changes_by_the_admin_cli_apply_to_the_running_servers_next_start() {
    let h = support::harness().await;
    let db = h.db.url.clone();
    let _phone = h.ready_phone("bobby@contoso.test").await;
    assert_eq!(
        h.start_signin("bobby@contoso.test").await.status,
        StatusCode::OK
    );

    // The policy now targets a group Bobby is not in: refused at once.
    ok(
        &db,
        &[
            "admin",
            "user",
            "add",
            "--upn",
            "carol@contoso.test",
            "--name",
            "Carol",
            "--group",
            "pilots",
        ],
    );
    ok(&db, &["admin", "policy", "set", "--target", "group:pilots"]);
    let r = h.start_signin("bobby@contoso.test").await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::FORBIDDEN, "policy_disabled")
    );

    // Bobby joins the group: allowed at once.
    ok(
        &db,
        &[
            "admin",
            "user",
            "add-to-group",
            "--upn",
            "bobby@contoso.test",
            "--group",
            "pilots",
        ],
    );
    assert_eq!(
        h.start_signin("bobby@contoso.test").await.status,
        StatusCode::OK
    );

    // The group is excluded: refused at once again.
    ok(&db, &["admin", "policy", "set", "--exclude", "pilots"]);
    let r = h.start_signin("bobby@contoso.test").await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::FORBIDDEN, "policy_disabled")
    );
}
