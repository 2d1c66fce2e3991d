//! Crash safety of the desktop phone, with real processes: the `authenticator` binary is killed
//! with SIGKILL at random points of enrollment, of enabling phone sign-in and of approval
//! (`KILLS` in all, at least 200). After every kill the next run of the phone finishes what the
//! killed one left (the key journal, authenticator-core's store.rs) and the store is
//! consistent: no half account, no key without its account, no account without its keys, no
//! account lost, no temporary key file left; an approval the server took is never lost.
//!
//! Kill points are uniformly random over the command's whole run, measured first without a
//! kill; a kill that comes after the process already exited does not count. The random seed is
//! printed (set `CRASH_SEED` to replay a run).
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use signin_domain::accounts;
use signin_domain::rules::risk::RiskConfig;
use signin_server::ServeConfig;
use support::{json_out, setup_with, Setup, UPN};

/// Kills per phase: enrollment, enabling phone sign-in, approval (205 in all).
const KILLS: [usize; 3] = [70, 65, 70];

/// What the phone's home holds, read straight from its files.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    /// account id -> (device key alias, phone-sign-in key alias)
    accounts: BTreeMap<String, (String, Option<String>)>,
    /// Aliases in the key journal (keys an unfinished operation may have left).
    journal: BTreeSet<String>,
    /// Aliases of the key files in `keys/`.
    keys: BTreeSet<String>,
    /// Temporary files in `keys/` (a key being written).
    temporaries: usize,
}

fn snapshot(home: &Path) -> Snapshot {
    let db = rusqlite::Connection::open_with_flags(
        home.join("authenticator.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut accounts = BTreeMap::new();
    let mut stmt = db
        .prepare("SELECT account_id, device_key_alias, passwordless_key_alias FROM accounts")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
        .unwrap();
    for row in rows {
        let (id, aliases): (String, (String, Option<String>)) = row.unwrap();
        accounts.insert(id, aliases);
    }
    // A removed account's device key stays until its server is told (it signs the notice).
    let mut stmt = db
        .prepare("SELECT account_id, device_key_alias FROM unregistrations")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, None))))
        .unwrap();
    for row in rows {
        let (id, aliases): (String, (String, Option<String>)) = row.unwrap();
        accounts.insert(format!("removed:{id}"), aliases);
    }
    let mut stmt = db.prepare("SELECT alias FROM key_journal").unwrap();
    let journal = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut keys = BTreeSet::new();
    let mut temporaries = 0;
    for entry in std::fs::read_dir(home.join("keys")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        match name.strip_suffix(".key") {
            // The software key store names a key file by its alias in hex.
            Some(hex_alias) => {
                let alias = String::from_utf8(hex::decode(hex_alias).unwrap()).unwrap();
                keys.insert(alias);
            }
            None => temporaries += 1,
        }
    }
    Snapshot {
        accounts,
        journal,
        keys,
        temporaries,
    }
}

impl Snapshot {
    /// Keys that exist on disk but belong to no account (before recovery: what a kill left).
    fn orphan_keys(&self) -> BTreeSet<String> {
        let owned = self.owned_keys();
        self.keys.difference(&owned).cloned().collect()
    }

    fn owned_keys(&self) -> BTreeSet<String> {
        self.accounts
            .values()
            .flat_map(|(device, passwordless)| [Some(device.clone()), passwordless.clone()])
            .flatten()
            .collect()
    }

    /// The invariants, as the next run of the phone leaves them.
    fn assert_consistent(&self, context: &str) {
        let owned = self.owned_keys();
        let missing: Vec<_> = owned.difference(&self.keys).collect();
        assert!(
            missing.is_empty(),
            "{context}: accounts without their keys: {missing:?}"
        );
        assert!(
            self.orphan_keys().is_empty(),
            "{context}: keys without an account: {:?}",
            self.orphan_keys()
        );
        assert!(
            self.journal.is_empty(),
            "{context}: journal left: {:?}",
            self.journal
        );
        assert_eq!(self.temporaries, 0, "{context}: temporary key files left");
    }

    /// A kill may leave what it was doing undone, never undo what was done before it.
    fn assert_keeps_accounts_of(&self, before: &Snapshot, context: &str) {
        for id in before.accounts.keys() {
            assert!(
                self.accounts.contains_key(id),
                "{context}: account {id} lost"
            );
        }
    }
}

/// Runs `cmd` and SIGKILLs it after `delay`. True when the kill hit the running process.
fn run_and_kill(mut cmd: Command, delay: Duration) -> bool {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    if child.try_wait().unwrap().is_some() {
        return false;
    }
    child.kill().unwrap();
    // An exit between `try_wait` and `kill` is an exit, not a kill.
    child.wait().unwrap().signal() == Some(SIGKILL)
}

const SIGKILL: i32 = 9;

/// How long `cmd` runs uninterrupted (and that it succeeds), for the range of kill points.
fn measure(mut cmd: Command) -> (Duration, Value) {
    let started = Instant::now();
    let out = cmd.output().unwrap();
    (started.elapsed(), json_out(&out))
}

fn rng() -> StdRng {
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    println!("CRASH_SEED={seed}");
    StdRng::seed_from_u64(seed)
}

/// Start limits high enough for a few hundred sign-ins by one user.
async fn server() -> Setup {
    setup_with(ServeConfig {
        risk: RiskConfig {
            burst: 10_000,
            ..RiskConfig::default()
        },
        ..ServeConfig::default()
    })
    .await
}

/// The next run of the phone (listing accounts) recovers; then the invariants must hold.
async fn recover_and_check(s: &Setup, before: &Snapshot, context: &str) -> Snapshot {
    json_out(&s.phone(&["accounts"]).await);
    let after = snapshot(s.home.path());
    after.assert_consistent(context);
    after.assert_keeps_accounts_of(before, context);
    after
}

async fn kill_in_background(s: &Setup, args: &[&str], delay: Duration) -> bool {
    let cmd = s.phone_command(args);
    tokio::task::spawn_blocking(move || run_and_kill(cmd, delay))
        .await
        .unwrap()
}

fn random_delay(rng: &mut StdRng, run: Duration) -> Duration {
    Duration::from_micros(rng.gen_range(0..run.as_micros().max(1) as u64))
}

async fn add_user(s: &Setup, i: usize) -> String {
    let upn = format!("user{i}@contoso.test");
    accounts::add_user(s.server.pool(), &upn, "User", &[])
        .await
        .unwrap();
    upn
}

#[tokio::test(flavor = "multi_thread")]
async fn enrollment_killed_at_random_points_leaves_a_consistent_store() {
    let s = server().await;
    let mut rng = rng();
    let upn = add_user(&s, 0).await;
    let (run, _) = measure(s.phone_command(&["enroll", &s.link_for(&upn).await]));
    let (mut kills, mut left_orphans, mut enrolled_anyway) = (0, 0, 0);
    let mut before = snapshot(s.home.path());
    for i in 1.. {
        if kills == KILLS[0] {
            break;
        }
        let upn = add_user(&s, i).await;
        let link = s.link_for(&upn).await;
        let hit = kill_in_background(&s, &["enroll", &link], random_delay(&mut rng, run)).await;
        let killed = snapshot(s.home.path());
        let context = format!("enrollment kill {i} (hit: {hit})");
        if hit {
            kills += 1;
            left_orphans += usize::from(!killed.orphan_keys().is_empty());
        }
        let after = recover_and_check(&s, &before, &context).await;
        assert!(
            after.accounts.len() <= before.accounts.len() + 1,
            "{context}: more than one account from one enrollment"
        );
        if hit && after.accounts.len() > before.accounts.len() {
            enrolled_anyway += 1;
        }
        before = after;
    }
    println!(
        "enrollment: {kills} kills, {left_orphans} left a key without an account (deleted by \
         the next run), {enrolled_anyway} killed after the account was stored"
    );
    // The kills landed inside the operation, not only before or after it.
    assert!(
        left_orphans > 0,
        "no kill hit between key creation and account"
    );
    // Every account on the phone still works: the last one enables phone sign-in.
    let last = before.accounts.keys().next_back().unwrap().clone();
    json_out(&s.phone(&["enable-phone-sign-in", &last]).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn enabling_phone_sign_in_killed_at_random_points_leaves_a_consistent_store() {
    let s = server().await;
    let mut rng = rng();
    let account = json_out(&s.phone(&["enroll", &s.link().await]).await);
    let id = account["account_id"].as_str().unwrap().to_owned();
    let (run, _) = measure(s.phone_command(&["enable-phone-sign-in", &id]));
    let (mut kills, mut left_orphans, mut replaced) = (0, 0, 0);
    let mut before = snapshot(s.home.path());
    for i in 1.. {
        if kills == KILLS[1] {
            break;
        }
        let args = ["enable-phone-sign-in", id.as_str()];
        let hit = kill_in_background(&s, &args, random_delay(&mut rng, run)).await;
        let killed = snapshot(s.home.path());
        let context = format!("enabling kill {i} (hit: {hit})");
        if hit {
            kills += 1;
            left_orphans += usize::from(!killed.orphan_keys().is_empty());
        }
        let after = recover_and_check(&s, &before, &context).await;
        assert_eq!(after.accounts.len(), 1, "{context}");
        assert_eq!(
            after.accounts[&id].0, before.accounts[&id].0,
            "{context}: device key"
        );
        assert!(
            after.accounts[&id].1.is_some(),
            "{context}: phone sign-in lost"
        );
        if hit && after.accounts[&id].1 != before.accounts[&id].1 {
            replaced += 1;
        }
        before = after;
    }
    println!(
        "enabling: {kills} kills, {left_orphans} left a key without an account (deleted by the \
         next run), {replaced} killed after the new key was stored"
    );
    assert!(
        left_orphans > 0,
        "no kill hit between key creation and its use"
    );
    // Phone and server agree again after one uninterrupted run: a sign-in is approved.
    json_out(&s.phone(&["enable-phone-sign-in", &id]).await);
    let started = s.start_sign_in().await;
    let request = pending_request(&s).await;
    let number = started["number"].as_str().unwrap();
    json_out(&s.phone(&["approve", &request, "--number", number]).await);
    assert_eq!(s.status(started["id"].as_str().unwrap()).await, "approved");
}

/// The one pending request on the phone (long-polled).
async fn pending_request(s: &Setup) -> String {
    let pending = json_out(&s.phone(&["pending", "--wait", "10"]).await);
    let pending = pending.as_array().unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    pending[0]["request_id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn approval_killed_at_random_points_loses_no_approval_and_keeps_the_store_consistent() {
    let s = server().await;
    let mut rng = rng();
    json_out(&s.phone(&["enroll", &s.link().await]).await);
    json_out(&s.phone(&["enable-phone-sign-in", UPN]).await);
    let before = snapshot(s.home.path());

    let started = s.start_sign_in().await;
    let request = pending_request(&s).await;
    let number = started["number"].as_str().unwrap().to_owned();
    let (run, _) = measure(s.phone_command(&["approve", &request, "--number", &number]));

    let (mut kills, mut approved_before_the_kill) = (0, 0);
    for i in 1.. {
        if kills == KILLS[2] {
            break;
        }
        let started = s.start_sign_in().await;
        let page = started["id"].as_str().unwrap().to_owned();
        let number = started["number"].as_str().unwrap().to_owned();
        let request = pending_request(&s).await;
        let args = ["approve", request.as_str(), "--number", number.as_str()];
        let hit = kill_in_background(&s, &args, random_delay(&mut rng, run)).await;
        let context = format!("approval kill {i} (hit: {hit})");
        let after = recover_and_check(&s, &before, &context).await;
        assert_eq!(
            after, before,
            "{context}: an approval changes no account or key"
        );
        if !hit {
            assert_eq!(s.status(&page).await, "approved", "{context}");
            continue;
        }
        kills += 1;
        let status = s.status(&page).await;
        if status == "approved" {
            approved_before_the_kill += 1;
        } else {
            assert_eq!(status, "pending", "{context}");
        }
        // Whatever the kill interrupted, answering again ends approved: the server either
        // takes this approval or already holds the first one.
        let again = s.phone(&args).await;
        let status = s.status(&page).await;
        assert_eq!(
            status,
            "approved",
            "{context}: retry gave {:?} {}",
            again.status,
            String::from_utf8_lossy(&again.stdout)
        );
    }
    println!(
        "approval: {kills} kills, {approved_before_the_kill} after the server took the approval"
    );
}
