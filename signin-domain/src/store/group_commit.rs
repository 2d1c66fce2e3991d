//! Group commit: the hot path's writes as units that concurrent requests share one
//! transaction and one commit for.
//!
//! A [`Unit`] is everything one request writes (an answer's decision with its audit entry, a
//! start's requests with theirs), run on one connection inside a transaction. On SQLite the
//! [`Writer`] owns one connection and runs the units queued while the previous group was
//! committing as one group: `BEGIN IMMEDIATE`, each unit, one `COMMIT` (one WAL write, and one
//! sync when `synchronous = FULL`). SQLite has one writer at a time anyway, so one connection
//! that never waits for the write lock loses nothing, and the units no longer contend for it.
//! Each unit's caller hears back only after the commit: nothing is acknowledged that a crash
//! could take back. If any unit of a group fails, the group is rolled back and every unit of it
//! runs again alone (units are re-runnable: they read what they need inside the transaction),
//! so one unit's failure never takes another's writes with it.
//!
//! On PostgreSQL each unit runs in its own transaction on a pooled connection: several server
//! instances share the database, a shared transaction would hold many users' row locks at once
//! across instances, and PostgreSQL already groups concurrent commits' WAL flushes itself.
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use sqlx::any::AnyRow;

use super::{Backend, Conn, Pool, StoreError, StoreResult};

/// What a unit's `run` returns: a future borrowing the unit and the connection.
pub type UnitFuture<'c, T> = Pin<Box<dyn Future<Output = StoreResult<T>> + Send + 'c>>;

/// The writes of one request, run inside a transaction the [`Writer`] opened. A unit may run
/// more than once (after another unit of its group failed): it must read inside the
/// transaction whatever its writes depend on, and report outcomes (e.g. "someone else answered
/// first") in its output, not as an error. An error rolls back its whole group.
pub trait Unit: Send + Sync + 'static {
    type Output: Send + 'static;
    /// `backend` says whether the transaction already holds the database's write lock
    /// (SQLite: yes, `BEGIN IMMEDIATE`) or rows must be locked (PostgreSQL: [`lock_user`]).
    ///
    /// [`lock_user`]: super::lock_user
    fn run<'c>(&'c self, conn: &'c mut Conn, backend: Backend) -> UnitFuture<'c, Self::Output>;

    /// The same writes as one SQLite [`Batch`] (several statements, one call to the database's
    /// thread), when they need no decision between statements; `None`: [`Unit::run`].
    fn batch(&self) -> Option<Batch> {
        None
    }

    /// The output of a [`Unit::batch`] from the rows its statements returned.
    fn output_of(&self, _rows: Vec<AnyRow>) -> StoreResult<Self::Output> {
        Err(StoreError::Corrupt(
            "a unit without a batch ran as one".into(),
        ))
    }
}

/// A value bound to a [`Batch`]'s `$n`.
#[derive(Debug, Clone)]
pub enum Arg {
    Int(i64),
    OptInt(Option<i64>),
    Text(String),
    OptText(Option<String>),
}

/// Several SQL statements run as one call on SQLite (sqlx runs every statement of a query
/// string on the connection's thread, binding `$n` to the n-th argument in each of them).
/// Statements may return rows (`RETURNING`); the unit reads them all in [`Unit::output_of`].
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub sql: String,
    pub args: Vec<Arg>,
}

impl Batch {
    /// Binds `arg` to the next `$n`; returns `$n` for the SQL text.
    pub fn bind(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    pub fn int(&mut self, v: i64) -> String {
        self.bind(Arg::Int(v))
    }

    pub fn text(&mut self, v: &str) -> String {
        self.bind(Arg::Text(v.to_owned()))
    }

    pub fn opt_text(&mut self, v: Option<&str>) -> String {
        self.bind(Arg::OptText(v.map(str::to_owned)))
    }

    /// Appends one statement.
    pub fn push(&mut self, statement: &str) {
        if !self.sql.is_empty() {
            self.sql.push_str(";\n");
        }
        self.sql.push_str(statement);
    }

    /// Appends `statement`, whose own `$1`, `$2`, … are `args`: renumbered after the batch's
    /// arguments so far. The same statement text and arguments run alone with [`query_with`].
    pub fn push_with(&mut self, statement: &str, args: Vec<Arg>) {
        let offset = self.args.len();
        let mut renumbered = String::with_capacity(statement.len() + 8);
        let mut rest = statement;
        while let Some(at) = rest.find('$') {
            renumbered.push_str(&rest[..=at]);
            rest = &rest[at + 1..];
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            match rest[..digits].parse::<usize>() {
                Ok(n) => renumbered.push_str(&(n + offset).to_string()),
                Err(_) => renumbered.push_str(&rest[..digits]),
            }
            rest = &rest[digits..];
        }
        renumbered.push_str(rest);
        self.push(&renumbered);
        self.args.extend(args);
    }
}

/// `sql` with `args` bound to its `$1`, `$2`, … in order.
pub fn query_with<'q>(
    sql: &'q str,
    args: &'q [Arg],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    args.iter().fold(sqlx::query(sql), |query, arg| match arg {
        Arg::Int(v) => query.bind(*v),
        Arg::OptInt(v) => query.bind(*v),
        Arg::Text(t) => query.bind(t.as_str()),
        Arg::OptText(t) => query.bind(t.as_deref()),
    })
}

/// Takes the user's lock where the transaction does not already serialize writers: a no-op in
/// a SQLite group (`BEGIN IMMEDIATE` holds the write lock), [`super::lock_user`] on PostgreSQL.
pub async fn lock_user_for(conn: &mut Conn, backend: Backend, upn: &str) -> StoreResult<()> {
    match backend {
        Backend::Sqlite => Ok(()),
        Backend::Postgres => super::lock_user(conn, upn).await,
    }
}

/// How many queued units one SQLite transaction takes at most.
const MAX_GROUP: usize = 128;

/// Runs [`Unit`]s: grouped on SQLite, one transaction each on PostgreSQL. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    pool: Pool,
    backend: Backend,
    /// The SQLite writer task's queue (`None` on PostgreSQL).
    queue: Option<mpsc::UnboundedSender<Box<dyn Job>>>,
    counts: Arc<Counts>,
}

/// Units committed and the commits they took (`GET /debug/statements` shows both).
#[derive(Debug, Default)]
struct Counts {
    units: AtomicU64,
    commits: AtomicU64,
}

impl Counts {
    fn committed(&self, units: usize) {
        self.units.fetch_add(units as u64, Ordering::Relaxed);
        self.commits.fetch_add(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// A writer for `pool`. On SQLite it starts the writer task (on the current tokio
    /// runtime), which ends when the last clone of the writer is dropped.
    pub fn start(pool: Pool) -> Writer {
        let backend = Backend::of_url(pool.connect_options().database_url.as_str())
            .unwrap_or(Backend::Sqlite);
        let counts = Arc::new(Counts::default());
        let queue = (backend == Backend::Sqlite).then(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(write_groups(pool.clone(), rx, counts.clone()));
            tx
        });
        Writer {
            pool,
            backend,
            queue,
            counts,
        }
    }

    /// Units committed so far and the commits they took: under load a commit carries several.
    pub fn committed(&self) -> (u64, u64) {
        (
            self.counts.units.load(Ordering::Relaxed),
            self.counts.commits.load(Ordering::Relaxed),
        )
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Runs `unit` and returns its output once its transaction has committed.
    pub async fn run<U: Unit>(&self, unit: U) -> StoreResult<U::Output> {
        let Some(queue) = &self.queue else {
            let mut tx = self.pool.begin().await?;
            let out = unit.run(&mut tx, self.backend).await?;
            tx.commit().await?;
            self.counts.committed(1);
            return Ok(out);
        };
        let (reply, answer) = oneshot::channel();
        queue
            .send(Box::new(Queued {
                unit,
                out: None,
                reply,
            }))
            .map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }
}

fn writer_gone() -> StoreError {
    StoreError::Corrupt("the database writer stopped".into())
}

/// A queued unit with its caller's reply, its type erased.
trait Job: Send {
    /// Runs the unit, keeping its output for [`Job::reply`]: as its [`Batch`] when it has one,
    /// with `BEGIN IMMEDIATE` before it when `first` and `COMMIT` after it when `last` (so a
    /// group of one is one call); else statement by statement, with those around it.
    fn run<'c>(&'c mut self, conn: &'c mut Conn, first: bool, last: bool) -> UnitFuture<'c, ()>;
    /// Answers the caller: the kept output, or `failure`.
    fn reply(self: Box<Self>, failure: Option<StoreError>);
}

struct Queued<U: Unit> {
    unit: U,
    out: Option<U::Output>,
    reply: oneshot::Sender<StoreResult<U::Output>>,
}

impl<U: Unit> Job for Queued<U> {
    fn run<'c>(&'c mut self, conn: &'c mut Conn, first: bool, last: bool) -> UnitFuture<'c, ()> {
        Box::pin(async move {
            let out = match self.unit.batch() {
                Some(batch) => {
                    let sql = format!(
                        "{}{}{}",
                        if first { "BEGIN IMMEDIATE;\n" } else { "" },
                        batch.sql,
                        if last { ";\nCOMMIT" } else { "" }
                    );
                    let rows = query_with(&sql, &batch.args).fetch_all(&mut *conn).await?;
                    self.unit.output_of(rows)?
                }
                None => {
                    if first {
                        sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
                    }
                    let out = self.unit.run(conn, Backend::Sqlite).await?;
                    if last {
                        sqlx::query("COMMIT").execute(&mut *conn).await?;
                    }
                    out
                }
            };
            self.out = Some(out);
            Ok(())
        })
    }

    fn reply(self: Box<Self>, failure: Option<StoreError>) {
        let result = match (failure, self.out) {
            (Some(e), _) => Err(e),
            (None, Some(out)) => Ok(out),
            (None, None) => Err(StoreError::Corrupt(
                "a unit committed without running".into(),
            )),
        };
        // A caller that went away (its request was cancelled) needs no answer.
        let _ = self.reply.send(result);
    }
}

/// The SQLite writer task: takes every unit queued by now (up to [`MAX_GROUP`]), runs them as
/// one transaction, answers them all after the commit; then the next group.
async fn write_groups(
    pool: Pool,
    mut queue: mpsc::UnboundedReceiver<Box<dyn Job>>,
    counts: Arc<Counts>,
) {
    let mut conn = None;
    while let Some(first) = queue.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match pool.acquire().await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    let message = e.to_string();
                    for job in group {
                        job.reply(Some(StoreError::Database(sqlx::Error::Protocol(
                            message.clone(),
                        ))));
                    }
                    continue;
                }
            },
        };
        match run_group(c, &mut group).await {
            Ok(()) => {
                counts.committed(group.len());
                group.into_iter().for_each(|job| job.reply(None));
            }
            Err(first_failure) => {
                if group.len() == 1 {
                    if let Some(job) = group.pop() {
                        job.reply(Some(first_failure));
                    }
                } else {
                    // Each alone, so that only the failing unit fails.
                    for mut job in group {
                        let alone = run_group(c, std::slice::from_mut(&mut job)).await;
                        if alone.is_ok() {
                            counts.committed(1);
                        }
                        job.reply(alone.err());
                    }
                }
                // The failure may have been the connection's, or its ROLLBACK may have failed
                // and left a transaction open: never hand it back to the pool (where later
                // statements would run inside that transaction); close it, and take a fresh
                // one next time.
                if let Some(c) = conn.take() {
                    drop(c.detach());
                }
            }
        }
    }
}

/// `BEGIN IMMEDIATE`, the units, `COMMIT` (the first unit's call begins the transaction, the
/// last one's commits it); rolled back if any of it fails.
async fn run_group(conn: &mut Conn, group: &mut [Box<dyn Job>]) -> StoreResult<()> {
    let n = group.len();
    let mut outcome = Ok(());
    for (i, job) in group.iter_mut().enumerate() {
        if let Err(e) = job.run(conn, i == 0, i + 1 == n).await {
            outcome = Err(e);
            break;
        }
    }
    if outcome.is_err() {
        // Nothing of the group stays (whichever statement failed, a transaction may be open).
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::TestDatabase;

    /// Writes one setting; `fail` then runs a statement that fails, after its write.
    /// `batched`: as one SQLite batch, else statement by statement.
    struct Put {
        name: String,
        fail: bool,
        batched: bool,
    }

    impl Unit for Put {
        type Output = String;

        fn run<'c>(&'c self, conn: &'c mut Conn, _: Backend) -> UnitFuture<'c, String> {
            Box::pin(async move {
                sqlx::query("INSERT INTO settings (name, value) VALUES ($1, 'v')")
                    .bind(&self.name)
                    .execute(&mut *conn)
                    .await?;
                if self.fail {
                    sqlx::query("INSERT INTO no_such_table VALUES (1)")
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(self.name.clone())
            })
        }

        fn batch(&self) -> Option<Batch> {
            if !self.batched {
                return None;
            }
            let mut b = Batch::default();
            let name = b.text(&self.name);
            b.push(&format!(
                "INSERT INTO settings (name, value) VALUES ({name}, 'v')"
            ));
            if self.fail {
                b.push("INSERT INTO no_such_table VALUES (1)");
            }
            Some(b)
        }

        fn output_of(&self, _: Vec<AnyRow>) -> StoreResult<String> {
            Ok(self.name.clone())
        }
    }

    #[test]
    fn push_with_renumbers_a_statements_own_parameters_after_the_batchs() {
        let mut b = Batch::default();
        b.push_with(
            "UPDATE t SET a = $2 WHERE b = $1",
            vec![Arg::Int(1), Arg::Int(2)],
        );
        b.push_with(
            "INSERT INTO t VALUES ($1, $10, $2)",
            (0..10).map(Arg::Int).collect(),
        );
        assert_eq!(
            b.sql,
            "UPDATE t SET a = $2 WHERE b = $1;\nINSERT INTO t VALUES ($3, $12, $4)"
        );
        assert_eq!(b.args.len(), 12);
    }

    async fn setting(pool: &Pool, name: &str) -> Option<String> {
        crate::store::get_setting(pool, name).await.unwrap()
    }

    /// Queues `n` units at once (each its own task; the test's runtime runs them all before
    /// the writer task): `prefix-i`, the `fail_at`-th failing, batched when `batched(i)`.
    fn queue_puts(
        writer: &Writer,
        prefix: &str,
        n: usize,
        fail_at: Option<usize>,
        batched: fn(usize) -> bool,
    ) -> Vec<tokio::task::JoinHandle<StoreResult<String>>> {
        (0..n)
            .map(|i| {
                let writer = writer.clone();
                let unit = Put {
                    name: format!("{prefix}-{i}"),
                    fail: fail_at == Some(i),
                    batched: batched(i),
                };
                tokio::spawn(async move { writer.run(unit).await })
            })
            .collect()
    }

    /// 40 units queued at once (the test runtime runs them all before the writer task) share
    /// commits; the one that fails (a batch, after its first statement) is the only one whose
    /// write is missing, and each caller hears its own outcome; batches and statement-by-
    /// statement units mix in one group.
    #[tokio::test]
    async fn units_queued_together_share_a_commit_and_a_failing_one_takes_only_its_own_writes() {
        let db = TestDatabase::create().await.unwrap();
        let pool = crate::store::connect(&db.url).await.unwrap();
        let writer = Writer::start(pool.clone());
        let tasks = queue_puts(&writer, "test", 40, Some(17), |i| i % 2 == 1);
        for (i, task) in tasks.into_iter().enumerate() {
            let outcome = task.await.unwrap();
            if i == 17 {
                assert!(outcome.is_err(), "the failing unit reports its error");
                assert_eq!(setting(&pool, "test-17").await, None);
            } else {
                assert_eq!(outcome.unwrap(), format!("test-{i}"));
                assert_eq!(
                    setting(&pool, &format!("test-{i}")).await.as_deref(),
                    Some("v")
                );
            }
        }
        let (units, commits) = writer.committed();
        assert_eq!(units, 39);
        if db.backend == Backend::Sqlite {
            // All 40 were one group; it failed, was rolled back and ran again unit by unit.
            assert_eq!(commits, 39);
            // Ten more queued together: one group, one commit.
            for task in queue_puts(&writer, "again", 10, None, |i| i % 3 == 0) {
                task.await.unwrap().unwrap();
            }
            let (after_units, after_commits) = writer.committed();
            assert_eq!(after_units, 49);
            assert_eq!(
                after_commits - commits,
                1,
                "ten units queued together, one commit"
            );
        }
    }
}
