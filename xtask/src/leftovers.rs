//! `cargo xtask test` leaves no process behind: the browsers, drivers and servers its tests
//! start must be gone when it ends (issue 20, finding 8). Processes of these programs that
//! were running before the run started are not the run's and are ignored.
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

/// The programs the suites start (by the file name of `argv[0]`).
const WATCHED: [&str; 5] = [
    "chromium",
    "chromedriver",
    "chrome_crashpad_handler",
    "signin-server",
    "apache2",
];

/// The argument every `apache2` the suites start carries (tests/src/apache.rs): a system
/// Apache (a package's postinst may start the service, whose children come and go) is never
/// the run's.
const APACHE_MARK: &str = "-DE2E_TESTS";

/// (pid, program) of every running watched process.
pub fn snapshot() -> BTreeSet<(u32, String)> {
    let mut found = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let mut argv = cmdline.split(|b| *b == 0);
        let argv0 = argv.next().unwrap_or_default();
        let program = String::from_utf8_lossy(argv0);
        let name = program.rsplit('/').next().unwrap_or_default();
        if name == "apache2" && !argv.any(|a| a == APACHE_MARK.as_bytes()) {
            continue;
        }
        if WATCHED.contains(&name) {
            found.insert((pid, name.to_owned()));
        }
    }
    found
}

/// Fails, naming them, when watched processes that were not running at `before` are still
/// running (after a short grace period for ones on their way out).
pub fn check(before: &BTreeSet<(u32, String)>) -> Result<()> {
    let started = Instant::now();
    loop {
        let left: Vec<String> = snapshot()
            .difference(before)
            .map(|(pid, name)| format!("{name} (pid {pid})"))
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(5) {
            bail!(
                "the test run left {} process(es) running: {}",
                left.len(),
                left.join(", ")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tests watch every process: each one's stand-ins would be the other's leftovers.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn a_process_started_after_the_snapshot_is_reported_until_it_ends() {
        let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        // A stand-in named like a watched program: a copy of `sleep` called `signin-server`.
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("signin-server");
        std::fs::copy("/bin/sleep", &fake).unwrap();
        let before = snapshot();
        let mut child = std::process::Command::new(&fake).arg("30").spawn().unwrap();
        // Until its `exec` completes, the child still shows the test's own command line.
        let seen = (0..250).any(|_| {
            let found = snapshot().iter().any(|(pid, _)| *pid == child.id());
            if !found {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            found
        });
        assert!(seen, "the stand-in never showed up as signin-server");
        let err = check(&before).unwrap_err().to_string();
        assert!(
            err.contains(&format!("signin-server (pid {})", child.id())),
            "{err}"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        check(&before).unwrap();
    }

    #[test]
    fn an_apache2_counts_only_with_the_suites_mark() {
        let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        // Stand-ins named apache2: a shell (`sleep; :` so that it does not exec the sleep),
        // one with the mark the suites' Apache carries, one without (a system Apache).
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("apache2");
        std::fs::copy("/bin/sh", &fake).unwrap();
        let before = snapshot();
        let spawn = |extra: &[&str]| {
            std::process::Command::new(&fake)
                .args(["-c", "sleep 30; :"])
                .args(extra)
                .spawn()
                .unwrap()
        };
        let mut system = spawn(&[]);
        let mut ours = spawn(&[APACHE_MARK]);
        let seen = (0..250).any(|_| {
            let found = snapshot().iter().any(|(pid, _)| *pid == ours.id());
            if !found {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            found
        });
        assert!(seen, "the marked stand-in never showed up");
        assert!(!snapshot().iter().any(|(pid, _)| *pid == system.id()));
        let err = check(&before).unwrap_err().to_string();
        assert!(
            err.contains(&format!("apache2 (pid {})", ours.id())),
            "{err}"
        );
        assert!(!err.contains(&format!("(pid {})", system.id())), "{err}");
        for child in [&mut system, &mut ours] {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}
