//! A count of the SQL statements the server has run, for `cargo xtask bench`'s "statements per
//! ceremony" (docs/PERFORMANCE.md). Off unless `SIGNIN_COUNT_STATEMENTS=1` is set when the server
//! starts: counting makes sqlx build a log event per statement, which costs a little CPU.
//!
//! The database driver reports each query it runs as an event under
//! [`STATEMENT_LOG_TARGET`]; this layer counts those events
//! (whatever the log filter shows). On SQLite, the driver runs its own transactions'
//! `BEGIN`/`COMMIT` without such an event; the group commit's (`store::group_commit`) are
//! queries and count, once per group.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use signin_domain::store::STATEMENT_LOG_TARGET;
use tracing::Subscriber;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Context, Layer};

/// The environment variable that turns counting on (`1`).
pub const ENV: &str = "SIGNIN_COUNT_STATEMENTS";

static ENABLED: AtomicBool = AtomicBool::new(false);
static COUNT: AtomicU64 = AtomicU64::new(0);

/// The counting layer when `SIGNIN_COUNT_STATEMENTS=1`, else `None` (and `count` answers `None`).
pub fn layer_from_env<S>() -> Option<impl Layer<S>>
where
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    if std::env::var(ENV).as_deref() != Ok("1") {
        return None;
    }
    ENABLED.store(true, Ordering::Relaxed);
    Some(Counter.with_filter(Targets::new().with_target(STATEMENT_LOG_TARGET, LevelFilter::TRACE)))
}

/// Statements run since the server started, when counting is on.
pub fn count() -> Option<u64> {
    ENABLED
        .load(Ordering::Relaxed)
        .then(|| COUNT.load(Ordering::Relaxed))
}

struct Counter;

impl<S: Subscriber> Layer<S> for Counter {
    fn on_event(&self, _event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        COUNT.fetch_add(1, Ordering::Relaxed);
    }
}
