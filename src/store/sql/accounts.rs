//! Users, API keys and settings.

use super::{conflict, impl_for_sql};
use crate::domain::ids::now_ms;
use crate::domain::prices::PriceRule;
use crate::store::{ApiKey, LedgerProblem, NewKey, NewUser, StoreError, StoreResult, User};

const USER_COLUMNS: &str = "id, name, role, balance, enabled, created_at";
const KEY_COLUMNS: &str =
    "id, user_id, key_hint, enabled, expires_at, quota_limit, quota_used, created_at";

impl_for_sql!(AccountStore {
    async fn setting_or_insert(&self, name: &str, value: &str) -> StoreResult<String> {
        sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(value)
            .execute(&self.pool)
            .await?;
        let (stored,): (String,) = sqlx::query_as("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(stored)
    }

    async fn create_user(&self, new: &NewUser) -> StoreResult<User> {
        let sql = format!(
            "INSERT INTO users (name, role, access_token_hash, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING {USER_COLUMNS}"
        );
        sqlx::query_as(&sql)
            .bind(new.name.as_str())
            .bind(new.role.as_str())
            .bind(new.access_token_hash.as_deref())
            .bind(now_ms())
            .fetch_one(&self.pool)
            .await
            .map_err(conflict("user"))
    }

    async fn user(&self, id: i64) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        Ok(sqlx::query_as(&sql).bind(id).fetch_optional(&self.pool).await?)
    }

    async fn user_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE access_token_hash = $1");
        Ok(sqlx::query_as(&sql).bind(token_hash).fetch_optional(&self.pool).await?)
    }

    async fn set_user_enabled(&self, id: i64, enabled: bool) -> StoreResult<Option<User>> {
        let sql = format!("UPDATE users SET enabled = $1 WHERE id = $2 RETURNING {USER_COLUMNS}");
        Ok(sqlx::query_as(&sql).bind(enabled).bind(id).fetch_optional(&self.pool).await?)
    }

    async fn top_up(&self, user_id: i64, amount: i64) -> StoreResult<User> {
        let mut tx = self.pool.begin().await?;
        let sql = format!("UPDATE users SET balance = balance + $1 WHERE id = $2 RETURNING {USER_COLUMNS}");
        let user: User = sqlx::query_as(&sql)
            .bind(amount)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {user_id}")))?;
        sqlx::query(
            "INSERT INTO ledger (user_id, kind, amount, created_at) VALUES ($1, 'topup', $2, $3)",
        )
        .bind(user_id)
        .bind(amount)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(user)
    }

    async fn user_by_name(&self, name: &str) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE name = $1");
        Ok(sqlx::query_as(&sql).bind(name).fetch_optional(&self.pool).await?)
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY id");
        Ok(sqlx::query_as(&sql).fetch_all(&self.pool).await?)
    }

    async fn create_key(&self, new: &NewKey) -> StoreResult<ApiKey> {
        let sql = format!(
            "INSERT INTO api_keys (user_id, key_hash, key_hint, expires_at, quota_limit, \
             hook_secret, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {KEY_COLUMNS}"
        );
        sqlx::query_as(&sql)
            .bind(new.user_id)
            .bind(new.key_hash.as_str())
            .bind(new.key_hint.as_str())
            .bind(new.expires_at)
            .bind(new.quota_limit)
            .bind(new.hook_secret.as_str())
            .bind(now_ms())
            .fetch_one(&self.pool)
            .await
            .map_err(conflict("key"))
    }

    async fn key_by_hash(&self, key_hash: &str) -> StoreResult<Option<(ApiKey, User)>> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = $1");
        let key: Option<ApiKey> = sqlx::query_as(&sql)
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await?;
        let Some(key) = key else { return Ok(None) };
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let user: User = sqlx::query_as(&sql)
            .bind(key.user_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(Some((key, user)))
    }

    async fn list_keys(&self, user_id: Option<i64>) -> StoreResult<Vec<ApiKey>> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE ($1 IS NULL OR user_id = $1) ORDER BY id"
        );
        Ok(sqlx::query_as(&sql).bind(user_id).fetch_all(&self.pool).await?)
    }

    async fn set_key_enabled(&self, id: i64, enabled: bool) -> StoreResult<Option<ApiKey>> {
        let sql = format!("UPDATE api_keys SET enabled = $1 WHERE id = $2 RETURNING {KEY_COLUMNS}");
        Ok(sqlx::query_as(&sql).bind(enabled).bind(id).fetch_optional(&self.pool).await?)
    }

    async fn key_hook_secret(&self, key_id: i64) -> StoreResult<Option<String>> {
        let secret: Option<(String,)> = sqlx::query_as("SELECT hook_secret FROM api_keys WHERE id = $1")
            .bind(key_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(secret.map(|(s,)| s))
    }

    async fn list_prices(&self) -> StoreResult<Vec<PriceRule>> {
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT action, mode, price FROM prices ORDER BY action, mode")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(action, mode, price)| {
                Some(PriceRule {
                    action: action.parse().ok()?,
                    mode: if mode.is_empty() { None } else { Some(mode.parse().ok()?) },
                    price,
                })
            })
            .collect())
    }

    async fn set_price(&self, rule: &PriceRule) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO prices (action, mode, price) VALUES ($1, $2, $3) \
             ON CONFLICT (action, mode) DO UPDATE SET price = excluded.price",
        )
        .bind(rule.action.as_str())
        .bind(rule.mode.map(|m| m.as_str()).unwrap_or_default())
        .bind(rule.price)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn ledger_check(&self) -> StoreResult<Vec<LedgerProblem>> {
        let mut problems = Vec::new();
        let balances: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT u.name, u.balance, CAST(COALESCE(SUM(l.amount), 0) AS BIGINT) \
             FROM users u LEFT JOIN ledger l ON l.user_id = u.id \
             GROUP BY u.id, u.name, u.balance HAVING u.balance <> COALESCE(SUM(l.amount), 0)",
        )
        .fetch_all(&self.pool)
        .await?;
        for (name, balance, ledger) in balances {
            problems.push(LedgerProblem(format!(
                "user {name}: balance {balance}, ledger says {ledger}"
            )));
        }
        let keys: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT k.id, k.quota_used, CAST(COALESCE(-SUM(l.amount), 0) AS BIGINT) \
             FROM api_keys k LEFT JOIN ledger l ON l.key_id = k.id AND l.kind <> 'topup' \
             GROUP BY k.id, k.quota_used HAVING k.quota_used <> COALESCE(-SUM(l.amount), 0)",
        )
        .fetch_all(&self.pool)
        .await?;
        for (id, used, ledger) in keys {
            problems.push(LedgerProblem(format!(
                "key {id}: used {used}, ledger says {ledger}"
            )));
        }
        let tasks: Vec<(String, String)> = sqlx::query_as(
            "SELECT t.mj_id, 'charged ' || CAST(t.quota AS TEXT) || ' without a charge row' FROM tasks t \
             WHERE t.quota > 0 AND NOT EXISTS \
               (SELECT 1 FROM ledger l WHERE l.task_id = t.mj_id AND l.kind = 'charge' AND l.amount = -t.quota) \
             UNION ALL \
             SELECT t.mj_id, 'failed but not refunded' FROM tasks t \
             WHERE t.status = 'FAILURE' AND t.quota > 0 AND NOT EXISTS \
               (SELECT 1 FROM ledger l WHERE l.task_id = t.mj_id AND l.kind = 'refund') \
             UNION ALL \
             SELECT t.mj_id, 'refunded but not failed' FROM tasks t \
             WHERE t.status <> 'FAILURE' AND EXISTS \
               (SELECT 1 FROM ledger l WHERE l.task_id = t.mj_id AND l.kind = 'refund')",
        )
        .fetch_all(&self.pool)
        .await?;
        for (mj_id, what) in tasks {
            problems.push(LedgerProblem(format!("task {mj_id}: {what}")));
        }
        Ok(problems)
    }
});
