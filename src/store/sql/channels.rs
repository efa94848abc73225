//! Upstream channels.

use super::{conflict, impl_for_sql};
use crate::domain::ids::now_ms;
use crate::store::{Channel, ChannelChange, NewChannel, StoreResult};
use std::collections::HashMap;

const CHANNEL_COLUMNS: &str = "id, name, base_url, secret, enabled, priority, weight, modes, \
     bot_types, max_in_flight, pass_account_filter, is_local, callbacks, created_at";

/// A task that occupies its channel: running or waiting there, not finished and not waiting
/// for a pop-up.
const IN_FLIGHT: &str = "status NOT IN ('SUCCESS', 'FAILURE', 'CANCEL', 'MODAL')";

impl_for_sql!(ChannelStore {
    async fn create_channel(&self, new: &NewChannel) -> StoreResult<Channel> {
        let sql = format!(
            "INSERT INTO channels (name, base_url, secret, priority, weight, modes, bot_types, \
             max_in_flight, pass_account_filter, is_local, callbacks, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING {CHANNEL_COLUMNS}"
        );
        sqlx::query_as(&sql)
            .bind(new.name.as_str())
            .bind(new.base_url.as_str())
            .bind(new.secret.as_str())
            .bind(new.priority)
            .bind(new.weight)
            .bind(new.modes.as_str())
            .bind(new.bot_types.as_str())
            .bind(new.max_in_flight)
            .bind(new.pass_account_filter)
            .bind(new.is_local)
            .bind(new.callbacks)
            .bind(now_ms())
            .fetch_one(&self.pool)
            .await
            .map_err(conflict("channel"))
    }

    async fn channel(&self, id: i64) -> StoreResult<Option<Channel>> {
        let sql = format!("SELECT {CHANNEL_COLUMNS} FROM channels WHERE id = $1");
        Ok(sqlx::query_as(&sql).bind(id).fetch_optional(&self.pool).await?)
    }

    async fn list_channels(&self) -> StoreResult<Vec<Channel>> {
        let sql = format!("SELECT {CHANNEL_COLUMNS} FROM channels ORDER BY priority DESC, id");
        Ok(sqlx::query_as(&sql).fetch_all(&self.pool).await?)
    }

    async fn update_channel(&self, id: i64, change: &ChannelChange) -> StoreResult<Option<Channel>> {
        let sql = format!(
            "UPDATE channels SET name = COALESCE($2, name), base_url = COALESCE($3, base_url), \
             secret = COALESCE($4, secret), enabled = COALESCE($5, enabled), \
             priority = COALESCE($6, priority), weight = COALESCE($7, weight), \
             modes = COALESCE($8, modes), bot_types = COALESCE($9, bot_types), \
             max_in_flight = CASE WHEN CAST($10 AS BIGINT) IS NULL THEN max_in_flight \
                 WHEN CAST($10 AS BIGINT) = 0 THEN NULL ELSE CAST($10 AS BIGINT) END, \
             pass_account_filter = COALESCE($11, pass_account_filter), \
             is_local = COALESCE($12, is_local), callbacks = COALESCE($13, callbacks) \
             WHERE id = $1 RETURNING {CHANNEL_COLUMNS}"
        );
        sqlx::query_as(&sql)
            .bind(id)
            .bind(change.name.as_deref())
            .bind(change.base_url.as_deref())
            .bind(change.secret.as_deref())
            .bind(change.enabled)
            .bind(change.priority)
            .bind(change.weight)
            .bind(change.modes.as_deref())
            .bind(change.bot_types.as_deref())
            .bind(change.max_in_flight)
            .bind(change.pass_account_filter)
            .bind(change.is_local)
            .bind(change.callbacks)
            .fetch_optional(&self.pool)
            .await
            .map_err(conflict("channel"))
    }

    async fn in_flight_by_channel(&self) -> StoreResult<HashMap<i64, i64>> {
        let sql = format!(
            "SELECT channel_id, COUNT(*) FROM tasks WHERE channel_id IS NOT NULL \
             AND {IN_FLIGHT} GROUP BY channel_id"
        );
        let rows: Vec<(i64, i64)> = sqlx::query_as(&sql)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }

    async fn reserve_channel(&self, mj_id: &str, channel_id: i64, cap: i64) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        // A write to the channel's row: PostgreSQL locks the row, SQLite the database, until
        // the transaction ends.
        sqlx::query("UPDATE channels SET max_in_flight = max_in_flight WHERE id = $1")
            .bind(channel_id)
            .execute(&mut *tx)
            .await?;
        let sql = format!(
            "SELECT COUNT(*) FROM tasks WHERE channel_id = $1 AND mj_id <> $2 AND {IN_FLIGHT}"
        );
        let (others,): (i64,) = sqlx::query_as(&sql)
        .bind(channel_id)
        .bind(mj_id)
        .fetch_one(&mut *tx)
        .await?;
        if others >= cap {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("UPDATE tasks SET channel_id = $1 WHERE mj_id = $2")
            .bind(channel_id)
            .bind(mj_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
});
