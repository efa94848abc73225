//! [`SqlStore`]: the store over any sqlx database with a [`Backend`]. The queries are
//! shared (`$1` placeholders work in both dialects); what differs per database (connection
//! setup, migrations, dialect-only SQL) lives in `sqlite.rs` and `postgres.rs`.

mod accounts;
mod channels;
mod coordination;
mod deliveries;
mod files;
mod ledger;
mod postgres;
mod sqlite;
mod tasks;

use super::{Store, StoreError, StoreResult};
use futures_util::future::BoxFuture;
use sqlx::migrate::{Migration, MigrationSource, MigrationType};
use sqlx::{Pool, Postgres, Sqlite};
use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;

/// A database the store runs on.
pub trait Backend: sqlx::Database {
    /// Opens a pool for `url`, creating the database file where that makes sense.
    fn connect(url: &str) -> impl Future<Output = Result<Pool<Self>, sqlx::Error>> + Send;
    /// Brings the schema up to date.
    fn migrate(pool: &Pool<Self>) -> impl Future<Output = StoreResult<()>> + Send;
    /// The newest migration this binary carries.
    fn latest_migration() -> i64;
}

/// The store over one database pool.
pub struct SqlStore<DB: sqlx::Database> {
    pool: Pool<DB>,
}

impl<DB: Backend> SqlStore<DB> {
    /// Connects and runs the migrations.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let pool = DB::connect(url).await?;
        DB::migrate(&pool).await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }
}

/// Opens the store named by `url` (`sqlite://...` or `postgres://...`) and migrates it.
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqlStore::<Sqlite>::connect(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(SqlStore::<Postgres>::connect(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_string()))
    }
}

/// Migrations compiled into the binary, so that one file is all an operator deploys.
#[derive(Debug)]
struct Embedded(&'static [(i64, &'static str, &'static str)]);

impl Embedded {
    fn latest(&self) -> i64 {
        self.0.iter().map(|m| m.0).max().unwrap_or(0)
    }
}

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> BoxFuture<'s, Result<Vec<Migration>, sqlx::error::BoxDynError>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// Maps a unique-constraint violation to `Conflict`, everything else to `Database`.
fn conflict(what: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(what.to_string())
        }
        _ => StoreError::Database(e),
    }
}

/// `$first, $first+1, ...` for an `IN (...)` list of `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Implements one of the store traits (or, with `inherent`, helper methods) for
/// `SqlStore<DB>` on every backend. The bounds list the Rust types the shared queries bind
/// and decode; both sqlx drivers satisfy them.
macro_rules! impl_for_sql {
    (inherent { $($body:tt)* }) => {
        impl_for_sql!(@emit [] [] { $($body)* });
    };
    ($store_trait:ident { $($body:tt)* }) => {
        impl_for_sql!(@emit [#[async_trait::async_trait]] [$crate::store::$store_trait for] { $($body)* });
    };
    (@emit [$($attr:tt)*] [$($trait_for:tt)*] { $($body:tt)* }) => {
        $($attr)*
        impl<DB> $($trait_for)* $crate::store::sql::SqlStore<DB>
        where
            DB: $crate::store::sql::Backend,
            for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
            for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
            for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
            for<'q> bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
            for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
            for<'q> String: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
            for<'q> Option<i64>: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB>,
            for<'q> Option<&'q str>: sqlx::Encode<'q, DB>,
            for<'q> Option<bool>: sqlx::Encode<'q, DB>,
            for<'r> $crate::store::User: sqlx::FromRow<'r, DB::Row>,
            for<'r> $crate::store::ApiKey: sqlx::FromRow<'r, DB::Row>,
            for<'r> $crate::store::Channel: sqlx::FromRow<'r, DB::Row>,
            for<'r> $crate::store::Task: sqlx::FromRow<'r, DB::Row>,
            for<'r> $crate::store::TaskFile: sqlx::FromRow<'r, DB::Row>,
            for<'r> $crate::store::Delivery: sqlx::FromRow<'r, DB::Row>,
            for<'r> $crate::store::DeliveryAttempt: sqlx::FromRow<'r, DB::Row>,
            usize: sqlx::ColumnIndex<DB::Row>,
        {
            $($body)*
        }
    };
}
use impl_for_sql;
