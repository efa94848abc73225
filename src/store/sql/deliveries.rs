//! Client notifications: queued in the transaction that changes a task, claimed under a
//! lease by the notifier, and closed with a record of every attempt.

use super::{impl_for_sql, placeholders};
use crate::store::{Delivery, DeliveryAttempt, DeliveryNext, DeliveryState, StoreResult, Task};
use sqlx::Transaction;
use std::collections::HashMap;

const DELIVERY_COLUMNS: &str = "id, mj_id, seq, url, key_id, status, progress, payload, state, \
     attempts, next_attempt_at, lease_until, last_error, created_at, finished_at";

impl_for_sql!(inherent {
    /// Queues a notification of `task`'s current state, if it has a hook and a channel took
    /// it: tasks refused at submission were answered with an error and no id, so their
    /// client has nothing to be told about.
    pub(super) async fn queue_notification_in(
        tx: &mut Transaction<'static, DB>,
        task: &Task,
        now: i64,
    ) -> StoreResult<()> {
        let (Some(url), Some(_)) = (&task.notify_hook, &task.upstream_id) else {
            return Ok(());
        };
        let payload = serde_json::to_string(task).expect("a task serializes");
        // The task's row is locked by the change being made, so the numbering cannot race.
        sqlx::query(
            "INSERT INTO deliveries (mj_id, seq, url, key_id, status, progress, payload, \
             next_attempt_at, created_at) \
             SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5, $6, $7, $7 \
             FROM deliveries WHERE mj_id = $1",
        )
        .bind(task.mj_id.as_str())
        .bind(url.as_str())
        .bind(task.key_id)
        .bind(task.status.as_str())
        .bind(task.progress.as_str())
        .bind(payload)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
});

impl_for_sql!(DeliveryStore {
    async fn claim_deliveries(&self, now: i64, lease_until: i64, limit: i64) -> StoreResult<Vec<Delivery>> {
        // The outer conditions are checked again on the locked row: of two processes that
        // picked the same delivery, the second finds it leased and leaves it.
        let sql = format!(
            "UPDATE deliveries SET lease_until = $2 WHERE id IN ( \
                 SELECT d.id FROM deliveries d \
                 WHERE d.state = 'pending' AND d.next_attempt_at <= $1 AND d.lease_until <= $1 \
                 AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.mj_id = d.mj_id \
                                 AND e.state = 'pending' AND e.seq < d.seq) \
                 ORDER BY d.next_attempt_at, d.id LIMIT $3) \
             AND state = 'pending' AND lease_until <= $1 \
             RETURNING {DELIVERY_COLUMNS}"
        );
        Ok(sqlx::query_as(&sql)
            .bind(now)
            .bind(lease_until)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn record_attempt(&self, attempt: &DeliveryAttempt, next: DeliveryNext, lease_until: i64) -> StoreResult<()> {
        let id = attempt.delivery_id;
        let (state, next_attempt_at, finished_at) = match next {
            DeliveryNext::Delivered => (DeliveryState::Delivered, attempt.at, Some(attempt.at)),
            DeliveryNext::RetryAt(at) => (DeliveryState::Pending, at, None),
            DeliveryNext::GiveUp => (DeliveryState::GivenUp, attempt.at, Some(attempt.at)),
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO delivery_attempts (delivery_id, at, status_code, error, duration_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(attempt.at)
        .bind(attempt.status_code)
        .bind(attempt.error.as_deref())
        .bind(attempt.duration_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE deliveries SET state = $1, attempts = attempts + 1, next_attempt_at = $2, \
             finished_at = $3, last_error = $4, lease_until = 0 \
             WHERE id = $5 AND state = 'pending' AND lease_until = $6",
        )
        .bind(state.as_str())
        .bind(next_attempt_at)
        .bind(finished_at)
        .bind(attempt.error.as_deref())
        .bind(id)
        .bind(lease_until)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn release_deliveries(&self, ids: &[i64]) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "UPDATE deliveries SET lease_until = 0 WHERE state = 'pending' AND id IN ({})",
            placeholders(1, ids.len())
        );
        let mut query = sqlx::query(&sql);
        for id in ids {
            query = query.bind(*id);
        }
        query.execute(&self.pool).await?;
        Ok(())
    }

    async fn task_deliveries(&self, mj_id: &str) -> StoreResult<Vec<(Delivery, Vec<DeliveryAttempt>)>> {
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE mj_id = $1 ORDER BY seq");
        let deliveries: Vec<Delivery> = sqlx::query_as(&sql)
            .bind(mj_id)
            .fetch_all(&self.pool)
            .await?;
        let rows: Vec<DeliveryAttempt> = sqlx::query_as(
            "SELECT a.delivery_id, a.at, a.status_code, a.error, a.duration_ms \
             FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id \
             WHERE d.mj_id = $1 ORDER BY a.id",
        )
        .bind(mj_id)
        .fetch_all(&self.pool)
        .await?;
        let mut attempts: HashMap<i64, Vec<DeliveryAttempt>> = HashMap::new();
        for attempt in rows {
            attempts.entry(attempt.delivery_id).or_default().push(attempt);
        }
        Ok(deliveries
            .into_iter()
            .map(|d| {
                let tried = attempts.remove(&d.id).unwrap_or_default();
                (d, tried)
            })
            .collect())
    }
});
