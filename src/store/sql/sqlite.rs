//! SQLite: one file, WAL, a busy timeout so that concurrent writers wait instead of failing.

use super::{Backend, Embedded};
use crate::store::StoreResult;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Sqlite};
use std::str::FromStr;
use std::time::Duration;

const MIGRATIONS: Embedded = Embedded(&[
    (
        1,
        "init",
        include_str!("../../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "callbacks",
        include_str!("../../../migrations/sqlite/0002_callbacks.sql"),
    ),
    (
        3,
        "images",
        include_str!("../../../migrations/sqlite/0003_images.sql"),
    ),
    (
        4,
        "coordination",
        include_str!("../../../migrations/sqlite/0004_coordination.sql"),
    ),
]);

impl Backend for Sqlite {
    async fn connect(url: &str) -> Result<Pool<Self>, sqlx::Error> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        if let Some(dir) = options.get_filename().parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
    }

    async fn migrate(pool: &Pool<Self>) -> StoreResult<()> {
        let migrator = sqlx::migrate::Migrator::new(MIGRATIONS).await?;
        migrator.run(pool).await?;
        Ok(())
    }

    fn latest_migration() -> i64 {
        MIGRATIONS.latest()
    }
}
