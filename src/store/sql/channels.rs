//! Upstream channels.

use super::{conflict, impl_for_sql};
use crate::domain::ids::now_ms;
use crate::store::{Channel, NewChannel, StoreResult};

const CHANNEL_COLUMNS: &str = "id, name, base_url, secret, enabled, priority, weight, modes, \
     bot_types, max_in_flight, pass_account_filter, is_local, callbacks, created_at";

impl_for_sql!(ChannelStore {
    async fn create_channel(&self, new: &NewChannel) -> StoreResult<Channel> {
        let sql = format!(
            "INSERT INTO channels (name, base_url, secret, priority, weight, is_local, callbacks, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {CHANNEL_COLUMNS}"
        );
        sqlx::query_as(&sql)
            .bind(new.name.as_str())
            .bind(new.base_url.as_str())
            .bind(new.secret.as_str())
            .bind(new.priority)
            .bind(new.weight)
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
});
