//! Money movements. Each one changes a balance and writes its ledger row in the same
//! transaction as the task change that caused it; the ledger's unique (task, kind) index
//! makes a second charge or refund of one task impossible, whatever races.

use super::impl_for_sql;
use crate::store::{StoreError, StoreResult};
use sqlx::Transaction;

impl_for_sql!(inherent {
    /// Takes `price` from the user's balance and the key's limit, or fails without change
    /// when either is short. Conditional updates: no interleaving can go below zero.
    pub(super) async fn charge_in(
        tx: &mut Transaction<'static, DB>,
        user_id: i64,
        key_id: Option<i64>,
        mj_id: &str,
        price: i64,
        now: i64,
    ) -> StoreResult<()> {
        let taken: Option<(i64,)> = sqlx::query_as(
            "UPDATE users SET balance = balance - $1 WHERE id = $2 AND balance >= $1 RETURNING id",
        )
        .bind(price)
        .bind(user_id)
        .fetch_optional(&mut **tx)
        .await?;
        if taken.is_none() {
            return Err(StoreError::QuotaInsufficient("the user's balance is too low"));
        }
        if let Some(key_id) = key_id {
            let within: Option<(i64,)> = sqlx::query_as(
                "UPDATE api_keys SET quota_used = quota_used + $1 WHERE id = $2 \
                 AND (quota_limit IS NULL OR quota_used + $1 <= quota_limit) RETURNING id",
            )
            .bind(price)
            .bind(key_id)
            .fetch_optional(&mut **tx)
            .await?;
            if within.is_none() {
                return Err(StoreError::QuotaInsufficient("the key's quota limit is reached"));
            }
        }
        sqlx::query(
            "INSERT INTO ledger (user_id, key_id, task_id, kind, amount, created_at) \
             VALUES ($1, $2, $3, 'charge', $4, $5)",
        )
        .bind(user_id)
        .bind(key_id)
        .bind(mj_id)
        .bind(-price)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(super::conflict("charge of this task"))?;
        Ok(())
    }

    /// Gives a task's charge back to its user and key, once: a second call finds the refund
    /// row already there and changes nothing. Returns the amount refunded.
    pub(super) async fn refund_in(
        tx: &mut Transaction<'static, DB>,
        mj_id: &str,
        now: i64,
    ) -> StoreResult<i64> {
        let refund: Option<(i64, i64, Option<i64>)> = sqlx::query_as(
            "INSERT INTO ledger (user_id, key_id, task_id, kind, amount, created_at) \
             SELECT user_id, key_id, mj_id, 'refund', quota, $2 FROM tasks \
             WHERE mj_id = $1 AND quota > 0 \
             ON CONFLICT DO NOTHING RETURNING amount, user_id, key_id",
        )
        .bind(mj_id)
        .bind(now)
        .fetch_optional(&mut **tx)
        .await?;
        let Some((amount, user_id, key_id)) = refund else {
            return Ok(0);
        };
        sqlx::query("UPDATE users SET balance = balance + $1 WHERE id = $2")
            .bind(amount)
            .bind(user_id)
            .execute(&mut **tx)
            .await?;
        if let Some(key_id) = key_id {
            sqlx::query("UPDATE api_keys SET quota_used = quota_used - $1 WHERE id = $2")
                .bind(amount)
                .bind(key_id)
                .execute(&mut **tx)
                .await?;
        }
        Ok(amount)
    }
});
