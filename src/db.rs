//! Database connections: the embedded SQLite default or PostgreSQL, migrations,
//! and the one way to open a write transaction.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use crate::config::Config;

/// Connects to the configured database, creating the SQLite data directory first.
pub async fn connect(config: &Config) -> Result<DatabaseConnection, String> {
    let url = config.database_url();
    if config.database.url.is_none() {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            format!(
                "cannot create data directory {}: {e}",
                config.data_dir.display()
            )
        })?;
    }
    let is_sqlite = url.starts_with("sqlite:");
    let mut opts = ConnectOptions::new(url);
    opts.max_connections(config.database.max_connections)
        .min_connections(
            config
                .database
                .min_connections
                .min(config.database.max_connections),
        )
        .connect_timeout(config.database.connect_timeout)
        .acquire_timeout(config.database.connect_timeout)
        .idle_timeout(Duration::from_secs(300))
        // A ping before every statement doubled the round trips of a loaded
        // server; only a connection idle for a while is checked first.
        .test_before_acquire_if_idle_for(Duration::from_secs(10))
        .sqlx_logging(false);
    if is_sqlite {
        opts.map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sqlx_sqlite_journal_wal())
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
        });
    }
    if !is_sqlite {
        let port = url::Url::parse(&config.database_url())
            .ok()
            .and_then(|u| u.port())
            .unwrap_or(5432);
        // After an outage the pool still holds the connections that were
        // idle when it began, dead: each would fail one request before it
        // is dropped. Those idle since before the last outage seen are
        // pinged first (a failed ping drops it and the pool takes another).
        opts.map_sqlx_postgres_before_acquire(|conn, meta| {
            Box::pin(async move {
                let outage = LAST_OUTAGE_MS.load(Ordering::Relaxed);
                let idle_since = unix_ms().saturating_sub(meta.idle_for.as_millis() as u64);
                if outage != 0 && idle_since <= outage {
                    use sea_orm::sqlx::Connection;
                    conn.ping().await?;
                }
                Ok(true)
            })
        });
        opts.map_sqlx_postgres_pool_opts(move |pool| {
            pool.after_connect(move |_conn, _meta| {
                Box::pin(async move {
                    nodelay_to(port);
                    Ok(())
                })
            })
        });
    }
    Database::connect(opts)
        .await
        .map_err(|e| format!("cannot connect to the database: {}", redact(&e.to_string())))
}

/// When a statement last failed because the database could not be reached
/// (milliseconds since the Unix epoch; 0: never).
static LAST_OUTAGE_MS: AtomicU64 = AtomicU64::new(0);

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Notes that the database could not be reached just now: pooled
/// connections idle since before are checked before their next use.
pub fn note_outage() {
    LAST_OUTAGE_MS.store(unix_ms(), Ordering::Relaxed);
}

/// sqlx 0.9 no longer turns Nagle's algorithm off on its TCP sockets
/// (transact-rs/sqlx#4335): a statement whose parameters span several TCP
/// segments (every bulk insert) then waits ~40 ms for the server's delayed
/// ACK. After each new PostgreSQL connection, this sets TCP_NODELAY on the
/// process's TCP sockets to the database port (idempotent; Linux only).
#[cfg(target_os = "linux")]
fn nodelay_to(port: u16) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for entry in dir.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<std::os::fd::RawFd>().ok())
        else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        // SAFETY: the descriptor was open when listed and is only borrowed for
        // two socket calls; had it been closed since, they fail harmlessly.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let sock = socket2::SockRef::from(&fd);
        let to_db = sock
            .peer_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .is_some_and(|a| a.port() == port);
        if to_db {
            let _ = sock.set_tcp_nodelay(true);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn nodelay_to(_port: u16) {}

fn sqlx_sqlite_journal_wal() -> sea_orm::sqlx::sqlite::SqliteJournalMode {
    sea_orm::sqlx::sqlite::SqliteJournalMode::Wal
}

/// Removes a password from any URL-looking text before it reaches a log line.
fn redact(text: &str) -> String {
    match (text.find("://"), text.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &text[..scheme], &text[at..])
        }
        _ => text.to_owned(),
    }
}

pub async fn migrate_up(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// Starts a write transaction. On SQLite it takes the write lock at once
/// (`BEGIN IMMEDIATE`), so concurrent writers queue instead of failing with "busy".
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let options = if db.get_database_backend() == DbBackend::Sqlite {
        TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        }
    } else {
        TransactionOptions::default()
    };
    db.begin_with_options(options).await
}

/// Whether the database answers a trivial query.
pub async fn is_ready(db: &DatabaseConnection) -> bool {
    db.ping().await.is_ok()
}
