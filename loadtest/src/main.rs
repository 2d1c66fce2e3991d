//! `signin-load`: full phone sign-in ceremonies against a real `signin-server` process, as
//! `cargo xtask bench` runs them (docs/PERFORMANCE.md).
//!
//! Each simulated phone is one enrolled user with phone sign-in enabled, speaking the protocol
//! with `authenticator-protocol` (its own P-256 keys). A closed loop of `concurrency` workers,
//! each with its own user, runs ceremonies back to back: the application starts the sign-in
//! (`POST /api/v1/signin`, HTTP Basic), the phone gets the request (long-poll, or the ids a
//! push would carry), fetches and verifies the signed details, signs the approval with the
//! typed number, and the page reads `approved`. It prints throughput, latency percentiles,
//! the server's CPU-seconds per ceremony (from `/proc`), and the crypto bound measured in the
//! same run.
mod crypto;
mod phone;
mod server;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};

use phone::{Ceremony, Phone};
use server::Server;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Delivery {
    /// The phone long-polls (`GET /api/v1/device/poll`), then fetches the details.
    Longpoll,
    /// The phone was woken by a push carrying the ids: it fetches the details at once.
    Push,
}

impl Delivery {
    fn name(self) -> &'static str {
        match self {
            Delivery::Longpoll => "long-poll",
            Delivery::Push => "push-id",
        }
    }
}

#[derive(Parser, Debug)]
#[command(about = "Full sign-in ceremonies against a real signin-server (docs/PERFORMANCE.md)")]
struct Args {
    /// The signin-server binary (a release build).
    #[arg(long)]
    server: PathBuf,
    /// Database URL; default: a fresh SQLite file in a temporary directory.
    #[arg(long)]
    database: Option<String>,
    /// Simulated phones (users); at least the highest concurrency.
    #[arg(long, default_value_t = 64)]
    users: usize,
    /// Concurrency levels (closed-loop workers), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 8, 32])]
    concurrency: Vec<usize>,
    /// Ceremonies per level (after a short warm-up).
    #[arg(long, default_value_t = 1000)]
    ceremonies: usize,
    /// Upper bound of one level's run, seconds (it stops early when reached).
    #[arg(long, default_value_t = 30)]
    max_seconds: u64,
    /// Delivery modes, comma-separated.
    #[arg(long, value_delimiter = ',', value_enum, default_values_t = [Delivery::Longpoll, Delivery::Push])]
    delivery: Vec<Delivery>,
    /// Label of the database in the output (e.g. "SQLite", "PostgreSQL").
    #[arg(long, default_value = "SQLite")]
    label: String,
    /// The server's log filter (`RUST_LOG`); its log is `server.log` in the run's directory.
    #[arg(long, default_value = "warn")]
    server_log: String,
    /// Keep the run's directory (database, server.log) and print where it is.
    #[arg(long)]
    keep: bool,
    /// Instead of ceremonies: the server's memory with this many pending requests and as many
    /// parked long-polls.
    #[arg(long)]
    memory: Option<usize>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    // Workers and their HTTP clients on all cores; the server is another process.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let database = args
        .database
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("signin.db").display()));
    let users = args
        .users
        .max(args.concurrency.iter().copied().max().unwrap_or(1));
    if users == 0 {
        bail!("--users must be at least 1");
    }
    let mut server = Server::start(
        &args.server,
        &database,
        dir.path(),
        &args.server_log,
        args.memory,
    )
    .await?;
    server.add_users(&args.server, &database, users).await?;
    println!(
        "signin-load: {} at {} ({users} phones), server pid {}",
        args.label, server.base_url, server.pid
    );
    let phones = phone::enroll_all(&server, users).await?;
    println!("signin-load: {users} phones enrolled, phone sign-in enabled");

    if let Some(n) = args.memory {
        memory(&server, &phones, n).await?;
        return server.stop().await;
    }

    let bound = crypto::measure();
    println!(
        "signin-load: crypto bound (ring, one core, this run): sign details {:.1} µs, verify {:.1} µs",
        bound.sign_us, bound.verify_us
    );
    println!(
        "| database | delivery | concurrency | ceremonies | ceremonies/s | ceremony p50 / p99 ms | approval POST p50 / p99 ms | server CPU ms / ceremony | server CPU % | ratio | statements / ceremony | write units / commit |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &delivery in &args.delivery {
        for &concurrency in &args.concurrency {
            let report = level(
                &server,
                &phones,
                delivery,
                concurrency,
                args.ceremonies,
                Duration::from_secs(args.max_seconds),
            )
            .await?;
            let crypto_per_ceremony_us = bound.per_ceremony_us(delivery);
            // Ceremonies per server CPU-second ÷ crypto-bound ceremonies per CPU-second.
            let per_cpu_second = report.done as f64 / report.server_cpu_s;
            let ratio = per_cpu_second / (1e6 / crypto_per_ceremony_us);
            println!(
                "| {} | {} | {concurrency} | {} | {:.0} | {:.1} / {:.1} | {:.2} / {:.2} | {:.2} | {:.0} | {:.2} | {:.1} | {} |",
                args.label,
                delivery.name(),
                report.done,
                report.done as f64 / report.wall_s,
                report.ceremony.p(50.0),
                report.ceremony.p(99.0),
                report.approval.p(50.0),
                report.approval.p(99.0),
                report.server_cpu_s * 1e3 / report.done as f64,
                100.0 * report.server_cpu_s / report.wall_s,
                ratio,
                report.statements as f64 / report.done as f64,
                match report.commits {
                    Some((units, commits)) if commits > 0 => {
                        format!("{:.1}", units as f64 / commits as f64)
                    }
                    _ => "–".to_owned(),
                },
            );
        }
    }
    println!(
        "signin-load: crypto per ceremony: long-poll {:.0} µs (1 signature + 3 verifications), push-id {:.0} µs (1 + 2); ratio = ceremonies per server CPU-second ÷ (10^6 ÷ that)",
        bound.per_ceremony_us(Delivery::Longpoll),
        bound.per_ceremony_us(Delivery::Push)
    );
    server.stop().await?;
    if args.keep {
        println!("signin-load: kept {}", dir.keep().display());
    }
    Ok(())
}

/// What one concurrency level measured.
struct LevelReport {
    done: usize,
    wall_s: f64,
    server_cpu_s: f64,
    /// SQL statements the server ran for the row (its own counter; on SQLite the group
    /// commit's `BEGIN IMMEDIATE`/`COMMIT` count, sqlx's own transactions' do not).
    statements: u64,
    /// Write units and the commits they took during the row (`None`: an older server).
    commits: Option<(u64, u64)>,
    ceremony: stats::Latencies,
    approval: stats::Latencies,
}

async fn level(
    server: &Server,
    phones: &[Arc<Phone>],
    delivery: Delivery,
    concurrency: usize,
    ceremonies: usize,
    max: Duration,
) -> Result<LevelReport> {
    // Warm-up: every worker's connection pool and the server's caches.
    run_workers(server, phones, delivery, concurrency, concurrency * 2, max).await?;
    let statements_before = server.statements().await?;
    let commits_before = server.commits().await?;
    let cpu_before = server.cpu_seconds()?;
    let started = Instant::now();
    let results = run_workers(server, phones, delivery, concurrency, ceremonies, max).await?;
    let wall_s = started.elapsed().as_secs_f64();
    let server_cpu_s = server.cpu_seconds()? - cpu_before;
    let statements = server.statements().await? - statements_before;
    let commits = match (commits_before, server.commits().await?) {
        (Some((u0, c0)), Some((u1, c1))) => Some((u1 - u0, c1 - c0)),
        _ => None,
    };
    let mut ceremony = stats::Latencies::default();
    let mut approval = stats::Latencies::default();
    for c in &results {
        ceremony.push(c.total);
        approval.push(c.approval);
    }
    Ok(LevelReport {
        done: results.len(),
        wall_s,
        server_cpu_s,
        statements,
        commits,
        ceremony,
        approval,
    })
}

/// `concurrency` workers share `count` ceremonies; each uses its own phone (user).
async fn run_workers(
    server: &Server,
    phones: &[Arc<Phone>],
    delivery: Delivery,
    concurrency: usize,
    count: usize,
    max: Duration,
) -> Result<Vec<Ceremony>> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let deadline = Instant::now() + max;
    let mut tasks = Vec::with_capacity(concurrency);
    for phone in phones.iter().take(concurrency) {
        let phone = phone.clone();
        let next = next.clone();
        let app = server.app.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < count
                && Instant::now() < deadline
            {
                done.push(phone.ceremony(&app, delivery).await?);
            }
            anyhow::Ok(done)
        }));
    }
    let mut all = Vec::with_capacity(count);
    for t in tasks {
        all.extend(t.await.context("a worker panicked")??);
    }
    Ok(all)
}

/// Server RSS when holding `n` pending requests and `n` parked long-polls: the first half of
/// the phones get the pending sign-ins (several each), the other half, with nothing pending,
/// park the long-polls (several each).
async fn memory(server: &Server, phones: &[Arc<Phone>], n: usize) -> Result<()> {
    if phones.len() < 2 {
        bail!("--users must be at least 2 for the memory scenario");
    }
    let (busy, idle) = phones.split_at(phones.len() / 2);
    let mib = |kib: u64| kib as f64 / 1024.0;
    let idle_rss = server.rss_kib()?;
    println!(
        "signin-load: server RSS idle with {} phones: {:.1} MiB",
        phones.len(),
        mib(idle_rss)
    );
    let mut started = 0;
    while started < n {
        let batch: Vec<_> = (started..n.min(started + 256))
            .map(|i| {
                let phone = busy[i % busy.len()].clone();
                tokio::spawn(phone.start_only(server.app.clone()))
            })
            .collect();
        started += batch.len();
        for t in batch {
            t.await??;
        }
    }
    let pending = server.rss_kib()?;
    println!(
        "signin-load: server RSS with {n} pending requests: {:.1} MiB",
        mib(pending)
    );
    let polls: Vec<_> = (0..n)
        .map(|i| {
            let phone = idle[i % idle.len()].clone();
            tokio::spawn(async move { phone.park_poll(55).await })
        })
        .collect();
    // Let every poll reach the server and park.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let finished = polls.iter().filter(|p| p.is_finished()).count();
    let parked = server.rss_kib()?;
    let waiting = n - finished;
    println!(
        "signin-load: server RSS with {n} pending requests and {waiting} parked long-polls: {:.1} MiB",
        mib(parked)
    );
    if waiting > 0 {
        println!(
            "signin-load: per parked long-poll: {:.1} KiB",
            parked.saturating_sub(pending) as f64 / waiting as f64
        );
    }
    for p in polls {
        p.abort();
    }
    Ok(())
}
