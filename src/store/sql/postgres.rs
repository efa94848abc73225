//! PostgreSQL: several gateway processes may share it.

use super::{Backend, Embedded};
use crate::store::StoreResult;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Pool, Postgres};
use std::str::FromStr;
use std::time::Duration;

const MIGRATIONS: Embedded = Embedded(&[
    (
        1,
        "init",
        include_str!("../../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "callbacks",
        include_str!("../../../migrations/postgres/0002_callbacks.sql"),
    ),
    (
        3,
        "images",
        include_str!("../../../migrations/postgres/0003_images.sql"),
    ),
    (
        4,
        "coordination",
        include_str!("../../../migrations/postgres/0004_coordination.sql"),
    ),
]);

impl Backend for Postgres {
    async fn connect(url: &str) -> Result<Pool<Self>, sqlx::Error> {
        let options = PgConnectOptions::from_str(url)?;
        PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
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
