//! Database connection: SQLite by default, Postgres when the URL says so.
//!
//! Both backends run the same SQL through sqlx's `Any` driver; the few places where the dialects
//! differ (row locks, upserts) ask [`Db::dialect`]. The hot statements on Postgres (the ledger's
//! batches, leaderboard profiles) run on a native pool of their own ([`Db::hot_pg`]) that binds
//! typed arrays. Times are stored as epoch milliseconds, so no
//! timestamp type has to agree between the two.
//!
//! SQLite allows one writer at a time. Rather than let writers collide and retry on
//! `SQLITE_BUSY`, every write goes through a pool of exactly one connection, and reads use a
//! separate pool; with WAL, readers never block that writer. On Postgres the writer pool is small
//! and separate too, so reads never hold up a commit.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;
use sqlx::{AnyPool, Executor, PgPool};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a SQLite statement waits for a lock held by another process before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections of the Postgres writer pool, for every write but the ledger's batches.
const POSTGRES_WRITE_CONNECTIONS: u32 = 4;
/// Connections of the Postgres hot pool: one per ledger batch in flight (the ledger pipeline is
/// at most a few deep), one for a batch retried while another still holds its connection, and
/// one for the leaderboards' profile lookups.
const POSTGRES_HOT_CONNECTIONS: u32 = 4;
/// How long a hot-pool transaction may sit idle before Postgres ends it: a ledger batch never
/// waits that long between its statements unless its process stopped.
const POSTGRES_IDLE_IN_TRANSACTION: Duration = Duration::from_secs(2);
/// How long a request waits for a pooled connection before the pool reports a timeout. It
/// bounds how long a write waits when the database is gone (connecting is retried within it)
/// before it answers "unavailable"; under load a connection is free within milliseconds.
pub const POOL_ACQUIRE_TIMEOUT: Duration = Duration::from_millis(1_500);

/// Which SQL dialect is behind the pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// The database: a writer pool and a reader pool.
#[derive(Clone, Debug)]
pub struct Db {
    pub write: AnyPool,
    pub read: AnyPool,
    pub dialect: Dialect,
    /// On Postgres, a pool on the native driver for the hot statements (the ledger's batches, the
    /// leaderboards' profile lookups): they bind typed arrays (`= ANY($1::bigint[])`,
    /// `unnest(...)`), which the `Any` driver cannot, so the planner sees real row counts instead
    /// of guessing them for a JSON row source.
    pub hot_pg: Option<PgPool>,
    /// The SQLite file, if that is the backend.
    pub sqlite_path: Option<std::path::PathBuf>,
}

/// A SQLite file claimed by this process: held while the server runs, released when dropped.
#[derive(Debug)]
pub struct SqliteClaim(#[allow(dead_code)] std::fs::File);

/// `url` with `application_name=<name>` added, for a Postgres URL that names none (other URLs,
/// and URLs that do not parse, are returned as they are).
pub fn with_application_name(url: &str, name: &str) -> String {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return url.to_string();
    }
    match url::Url::parse(url) {
        Ok(mut parsed) if !parsed.query_pairs().any(|(k, _)| k == "application_name") => {
            parsed
                .query_pairs_mut()
                .append_pair("application_name", name);
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// Why a SQLite file cannot be opened for writing, when the file system says: the file or its
/// folder not writable by this user.
fn sqlite_open_cause(path: &Path) -> Option<String> {
    use std::io::ErrorKind;
    let denied = |e: &std::io::Error| {
        matches!(e.kind(), ErrorKind::PermissionDenied) || e.raw_os_error() == Some(1)
    };
    if path.exists() {
        if let Err(e) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
        {
            if denied(&e) {
                return Some(format!(
                    "no permission to write the file ({e}); check its owner and mode"
                ));
            }
            return Some(format!("the file cannot be opened: {e}"));
        }
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let probe = dir.join(format!(".points-write-check-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) if denied(&e) => Some(format!(
            "no permission to create files in {} ({e}); SQLite needs to write the database, its \
             -wal and -shm files there",
            dir.display()
        )),
        Err(e) => Some(format!("cannot create files in {}: {e}", dir.display())),
    }
}

impl Db {
    /// Connects to `url`, creating a SQLite file, and its folder when the folder above exists.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.trim_start_matches("//");
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() || path == ":memory:" {
                bail!(
                    "DATABASE_URL {url:?}: give SQLite a file path, e.g. sqlite://data/points.db"
                );
            }
            if let Some(dir) = Path::new(path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty() && !d.exists())
            {
                // The file's own folder is made (`data/` on a first start); a path under
                // folders that do not exist is a mistake, not a tree to create.
                let parent_exists = dir
                    .parent()
                    .is_none_or(|p| p.as_os_str().is_empty() || p.is_dir());
                if !parent_exists {
                    bail!(
                        "DATABASE_URL {url:?}: folder {} does not exist, nor the folder it would be \
                         made in; create it or correct the path",
                        dir.display()
                    );
                }
                std::fs::create_dir(dir)
                    .with_context(|| format!("creating database folder {}", dir.display()))?;
            }
            let full = format!("sqlite://{path}?mode=rwc");
            let options = AnyConnectOptions::from_str(&full)
                .with_context(|| format!("parsing database URL for {path}"))?;
            let setup = |options: AnyConnectOptions, max: u32| {
                AnyPoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(POOL_ACQUIRE_TIMEOUT)
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            let busy = SQLITE_BUSY_TIMEOUT.as_millis();
                            // synchronous=FULL: a commit is on disk before the caller hears of
                            // it, which is what an acknowledged change promises.
                            conn.execute(
                                format!(
                                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; \
                                     PRAGMA busy_timeout={busy}; PRAGMA foreign_keys=ON;"
                                )
                                .as_str(),
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
            };
            let write = match setup(options.clone(), 1).await {
                Ok(pool) => pool,
                Err(e) => {
                    let cause = sqlite_open_cause(Path::new(path))
                        .map_or_else(|| e.to_string(), |cause| format!("{cause} ({e})"));
                    bail!("opening SQLite database {path}: {cause}");
                }
            };
            let read = setup(options, max_connections.max(2))
                .await
                .with_context(|| format!("opening SQLite database {path}"))?;
            Ok(Db {
                write,
                read,
                dialect: Dialect::Sqlite,
                hot_pg: None,
                sqlite_path: Some(path.into()),
            })
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let connect = |max: u32| {
                AnyPoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(POOL_ACQUIRE_TIMEOUT)
                    .connect(url)
            };
            let fail = || format!("connecting to {}", crate::config::redact_url(url));
            // Writes get their own small pool, so a burst of reads never makes a ledger commit
            // wait for a connection.
            let write = match connect(POSTGRES_WRITE_CONNECTIONS).await {
                Ok(pool) => pool,
                // A pool that timed out says only that; one direct connection says why
                // (refused, unknown host, bad password, no such database).
                Err(sqlx::Error::PoolTimedOut) => {
                    let direct = tokio::time::timeout(
                        POOL_ACQUIRE_TIMEOUT * 2,
                        <sqlx::AnyConnection as sqlx::Connection>::connect(url),
                    )
                    .await;
                    match direct {
                        Ok(Err(e)) => bail!("{}: {e}", fail()),
                        _ => bail!(
                            "{}: no connection within {:?}",
                            fail(),
                            POOL_ACQUIRE_TIMEOUT
                        ),
                    }
                }
                Err(e) => return Err(anyhow::Error::new(e).context(fail())),
            };
            let read = connect(max_connections).await.with_context(fail)?;
            // Connected on first use. Every statement sent through it has an index path; with
            // sequential scans off, a plan made while a table was small (a fresh database, before
            // its first analyze) cannot keep scanning the table once it has grown. A transaction
            // left idle (its process paused or cut off mid-batch) is ended by the server, so the
            // row locks it holds (balances, a lease row) never stall another node for long.
            let hot = PgPoolOptions::new()
                .max_connections(POSTGRES_HOT_CONNECTIONS)
                .acquire_timeout(POOL_ACQUIRE_TIMEOUT)
                .after_connect(|conn, _meta| {
                    Box::pin(async move {
                        let idle = POSTGRES_IDLE_IN_TRANSACTION.as_millis();
                        conn.execute(
                            format!(
                                "SET enable_seqscan = off; \
                                 SET idle_in_transaction_session_timeout = {idle}"
                            )
                            .as_str(),
                        )
                        .await?;
                        Ok(())
                    })
                })
                .connect_lazy(url)
                .with_context(fail)?;
            Ok(Db {
                write,
                read,
                dialect: Dialect::Postgres,
                hot_pg: Some(hot),
                sqlite_path: None,
            })
        } else {
            let scheme = url.split(':').next().unwrap_or_default();
            bail!(
                "DATABASE_URL scheme {scheme:?} is not supported: use sqlite://<file> or postgres://..."
            )
        }
    }

    /// Claims a SQLite file for this process's server: a second process serving the same file
    /// would keep its own activity state and its own in-memory counts, so it is refused with a
    /// clear message. The claim is an exclusive lock on `<file>.lock` beside the database (a lock
    /// on the database file itself would share the file with SQLite's own locks). Postgres needs
    /// no claim: several nodes coordinate through it.
    pub fn claim_single_process(&self) -> anyhow::Result<Option<SqliteClaim>> {
        let Some(path) = &self.sqlite_path else {
            return Ok(None);
        };
        let mut lock_path = path.clone().into_os_string();
        lock_path.push(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("opening {}", Path::new(&lock_path).display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(SqliteClaim(file))),
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "SQLite database {} is already served by another process: a SQLite file serves \
                 one process (run several nodes on Postgres with REDIS_URL)",
                path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", Path::new(&lock_path).display()))
            }
        }
    }

    /// Applies the migrations of this backend that have not run yet.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.dialect {
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
            Dialect::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&self.write)
            .await
            .context("applying database migrations")?;
        Ok(())
    }

    /// The migrations recorded as applied: `(version, description)`, oldest first.
    pub async fn applied_migrations(&self) -> Vec<(i64, String)> {
        sqlx::query_as("SELECT version, description FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&self.read)
            .await
            .unwrap_or_default()
    }

    /// Writes a consistent copy of a SQLite database to `path` (`VACUUM INTO`), while the
    /// server may be serving it; refuses a `path` that exists. Postgres: use `pg_dump`.
    pub async fn backup_to(&self, path: &std::path::Path) -> anyhow::Result<()> {
        if self.dialect == Dialect::Postgres {
            bail!("backup copies SQLite databases; for Postgres use pg_dump (see README \"Backup and restore\")");
        }
        if path.exists() {
            bail!("{} exists; name a new file", path.display());
        }
        let target = path
            .to_str()
            .ok_or_else(|| anyhow::anyhow!("{} is not valid UTF-8", path.display()))?;
        sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(&self.write)
            .await
            .with_context(|| format!("writing the backup to {target}"))?;
        Ok(())
    }

    /// `FOR UPDATE` where the backend has row locks; SQLite's single writer needs none.
    pub fn for_update(&self) -> &'static str {
        match self.dialect {
            Dialect::Postgres => " FOR UPDATE",
            Dialect::Sqlite => "",
        }
    }

    /// `FOR UPDATE SKIP LOCKED` on Postgres (claiming queue rows another process is claiming is
    /// skipped, not waited for); nothing on SQLite, whose writer is alone.
    pub fn skip_locked(&self) -> &'static str {
        match self.dialect {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.read)
            .await
            .context("database ping")?;
        Ok(())
    }

    /// Whether the database takes writes: a write that changes nothing, on the writers' pool,
    /// rolled back. A read-only file, folder or database answers its error here.
    pub async fn probe_write(&self) -> anyhow::Result<()> {
        let mut tx = self.write.begin().await.context("database write check")?;
        sqlx::query("DELETE FROM apps WHERE id IS NULL")
            .execute(&mut *tx)
            .await
            .context("database write check")?;
        tx.rollback().await.context("database write check")?;
        Ok(())
    }
}

/// The type of a column read from a JSON parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    Int,
    Text,
}

impl Db {
    /// A row source `(value)` over the JSON array of integers bound at `param`.
    pub fn json_ints(&self, param: &str) -> String {
        match self.dialect {
            Dialect::Postgres => format!(
                "(SELECT CAST(value AS BIGINT) AS value FROM json_array_elements_text(CAST({param} AS json)))"
            ),
            Dialect::Sqlite => format!("(SELECT value FROM json_each({param}))"),
        }
    }

    /// The condition "`column` is one of the JSON array of integers bound at `param`". On Postgres
    /// the list becomes an array (`= ANY(ARRAY(...))`), which the planner costs as a handful of
    /// values and so probes an index; a JSON row source it costs as 100 rows, and on a table of a
    /// few thousand it would rather scan the table and hash-join them.
    pub fn in_ints(&self, column: &str, param: &str) -> String {
        match self.dialect {
            Dialect::Postgres => format!(
                "{column} = ANY(ARRAY(SELECT CAST(value AS BIGINT) FROM json_array_elements_text(CAST({param} AS json))))"
            ),
            Dialect::Sqlite => format!("{column} IN (SELECT value FROM json_each({param}))"),
        }
    }

    /// A row source `(value)` over the JSON array of strings bound at `param`.
    pub fn json_texts(&self, param: &str) -> String {
        match self.dialect {
            Dialect::Postgres => {
                format!("(SELECT value FROM json_array_elements_text(CAST({param} AS json)))")
            }
            Dialect::Sqlite => format!("(SELECT value FROM json_each({param}))"),
        }
    }

    /// A row source with `columns` over the JSON array of objects bound at `param`.
    pub fn json_records(&self, param: &str, columns: &[(&str, Col)]) -> String {
        match self.dialect {
            Dialect::Postgres => {
                let defs = columns
                    .iter()
                    .map(|(name, col)| {
                        let ty = match col {
                            Col::Int => "BIGINT",
                            Col::Text => "TEXT",
                        };
                        format!("{name} {ty}")
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("(SELECT * FROM json_to_recordset(CAST({param} AS json)) AS x({defs}))")
            }
            Dialect::Sqlite => {
                let cols = columns
                    .iter()
                    .map(|(name, _)| format!("json_extract(value, '$.{name}') AS {name}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("(SELECT {cols} FROM json_each({param}))")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn unknown_schemes_and_memory_databases_are_refused_clearly() {
        let err = Db::connect("mysql://localhost/points", 2)
            .await
            .expect_err("mysql is not supported");
        assert!(
            err.to_string().contains("\"mysql\" is not supported"),
            "{err}"
        );
        let err = Db::connect("sqlite::memory:", 2)
            .await
            .expect_err("memory databases lose every change");
        assert!(err.to_string().contains("file path"), "{err}");
    }

    #[test]
    fn postgres_urls_get_an_application_name_unless_they_have_one() {
        assert_eq!(
            with_application_name("postgres://u@h/db", "points-engine n1"),
            "postgres://u@h/db?application_name=points-engine+n1"
        );
        assert_eq!(
            with_application_name("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/db?sslmode=disable&application_name=x"
        );
        let named = "postgres://u@h/db?application_name=mine";
        assert_eq!(with_application_name(named, "x"), named);
        assert_eq!(
            with_application_name("sqlite://data/p.db", "x"),
            "sqlite://data/p.db"
        );
    }

    #[actix_web::test]
    async fn a_sqlite_file_and_its_folder_are_created_in_wal_mode() {
        let dir = tempfile::tempdir().expect("temp dir");
        // Folders that do not exist above the file's own are not made.
        let deeper = dir.path().join("nested/deeper/points.db");
        let refused = Db::connect(&format!("sqlite://{}", deeper.display()), 2).await;
        assert!(refused.is_err());
        assert!(!dir.path().join("nested").exists());
        let path = dir.path().join("nested/points.db");
        let db = Db::connect(&format!("sqlite://{}", path.display()), 2)
            .await
            .expect("connect");
        db.migrate().await.expect("migrate");
        assert!(path.exists());
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&db.write)
            .await
            .expect("journal mode");
        assert_eq!(mode, "wal");
        // Migrating again is a no-op.
        db.migrate().await.expect("migrate twice");
    }
}
