//! `cargo xtask test` leaves no process behind: the browsers, drivers and servers its tests
//! start must be gone when it ends (issue 20, finding 8). Processes of these programs that
//! were running before the run started are not the run's and are ignored.
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

/// The programs the suites start (by the file name of `argv[0]`).
const WATCHED: [&str; 4] = [
    "chromium",
    "chromedriver",
    "chrome_crashpad_handler",
    "signin-server",
];

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
        let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
        let program = String::from_utf8_lossy(argv0);
        let name = program.rsplit('/').next().unwrap_or_default();
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

    #[test]
    fn a_process_started_after_the_snapshot_is_reported_until_it_ends() {
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
}
