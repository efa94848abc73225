//! Coordination between gateway processes on one database: leases and rate counters.

use super::impl_for_sql;
use crate::store::StoreResult;

impl_for_sql!(CoordinationStore {
    async fn acquire_lease(&self, name: &str, holder: &str, now_ms: i64, until_ms: i64) -> StoreResult<bool> {
        // Inserted, or taken over from an expired holder, or renewed by its own holder; a
        // running lease of another holder leaves no row to return.
        let taken: Option<(String,)> = sqlx::query_as(
            "INSERT INTO leases (name, holder, until_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms \
             WHERE leases.until_ms <= $4 OR leases.holder = excluded.holder RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(until_ms)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        Ok(taken.is_some())
    }

    async fn extend_lease(&self, name: &str, holder: &str, until_ms: i64) -> StoreResult<()> {
        sqlx::query("UPDATE leases SET until_ms = $1 WHERE name = $2 AND holder = $3")
            .bind(until_ms)
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn count_request(&self, key_id: i64, window_start: i64) -> StoreResult<i64> {
        let (count,): (i64,) = sqlx::query_as(
            "INSERT INTO rate_counters (key_id, window_start, count) VALUES ($1, $2, 1) \
             ON CONFLICT (key_id, window_start) DO UPDATE SET count = rate_counters.count + 1 \
             RETURNING count",
        )
        .bind(key_id)
        .bind(window_start)
        .fetch_one(&self.pool)
        .await?;
        Ok(count)
    }

    async fn prune_rate_counters(&self, before: i64) -> StoreResult<()> {
        sqlx::query("DELETE FROM rate_counters WHERE window_start < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn check_ready(&self) -> StoreResult<bool> {
        let (latest,): (Option<i64>,) =
            sqlx::query_as("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await?;
        Ok(latest == Some(DB::latest_migration()))
    }
});
