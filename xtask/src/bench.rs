//! `cargo xtask bench`: the server load scenarios of docs/PERFORMANCE.md, bounded in count and
//! time. Builds the release `signin-server` and the load driver (`loadtest/`, `signin-load`),
//! then runs full ceremonies (long-poll and push-id delivery, several concurrencies) against a
//! fresh SQLite file and a throwaway PostgreSQL cluster, and measures the server's memory with
//! 10,000 pending requests and 10,000 parked long-polls. Every table row prints the ratio of
//! ceremonies per server CPU-second to the crypto bound measured in the same run.
use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::postgres::Cluster;
use crate::run;

/// One scenario's arguments to `signin-load`.
const CEREMONIES: &[&str] = &[
    "--users",
    "64",
    "--concurrency",
    "1,8,32",
    "--ceremonies",
    "1500",
    "--max-seconds",
    "20",
];
const MEMORY: &[&str] = &["--users", "200", "--memory", "10000"];

pub fn bench() -> Result<()> {
    crate::step("build signin-server + signin-load (release)", || {
        run(Command::new("cargo").args([
            "build",
            "--release",
            "-p",
            "signin-server",
            "-p",
            "loadtest",
        ]))
    })?;
    let server = Path::new("target/release/signin-server");
    let driver = Path::new("target/release/signin-load");
    let load = |extra: &[&str]| {
        let mut cmd = Command::new(driver);
        cmd.arg("--server").arg(server).args(extra);
        cmd
    };
    crate::step("ceremonies on SQLite", || {
        run(load(CEREMONIES).args(["--label", "SQLite"]))
    })?;
    crate::step("ceremonies on PostgreSQL", || {
        crate::system::ensure(&[crate::system::Need::Postgres])?;
        let cluster = Cluster::start_in("postgres-bench")?;
        run(load(CEREMONIES)
            .args(["--label", "PostgreSQL"])
            .args(["--database", &cluster.url()]))
    })?;
    crate::step(
        "memory: 10,000 pending requests and 10,000 parked long-polls",
        || run(&mut load(MEMORY)),
    )
}
