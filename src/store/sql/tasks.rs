//! Tasks: creation, lookups, and the conditional updates that keep a task's end exactly-once.

use super::{conflict, impl_for_sql, placeholders};
use crate::domain::TaskStatus;
use crate::store::{NewTask, StoreError, StoreResult, Task, TaskFilter, TaskUpdate};

const TASK_COLUMNS: &str = "id, mj_id, user_id, key_id, channel_id, upstream_id, parent_id, \
     action, status, progress, prompt, prompt_en, description, state, bot_type, mode, custom_id, \
     notify_hook, submit_time, start_time, finish_time, upstream_image_url, video_url, \
     video_urls, fail_reason, buttons, properties, quota, missing_polls, updated_at";

/// SQL condition: the task can still change.
const UNFINISHED: &str = "status NOT IN ('SUCCESS', 'FAILURE', 'CANCEL')";

impl_for_sql!(TaskStore {
    async fn insert_task(&self, new: &NewTask, price: i64) -> StoreResult<Task> {
        let sql = format!(
            "INSERT INTO tasks (mj_id, user_id, key_id, parent_id, action, status, prompt, \
             description, state, bot_type, mode, custom_id, notify_hook, submit_time, quota, \
             updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $14) \
             RETURNING {TASK_COLUMNS}"
        );
        let mut tx = self.pool.begin().await?;
        let task: Task = sqlx::query_as(&sql)
            .bind(new.mj_id.as_str())
            .bind(new.user_id)
            .bind(new.key_id)
            .bind(new.parent_id.as_deref())
            .bind(new.action.as_str())
            .bind(new.status.as_str())
            .bind(new.prompt.as_str())
            .bind(new.description.as_str())
            .bind(new.state.as_deref())
            .bind(new.bot_type.as_str())
            .bind(new.mode.map(|m| m.as_str()))
            .bind(new.custom_id.as_deref())
            .bind(new.notify_hook.as_deref())
            .bind(new.submit_time)
            .bind(price)
            .fetch_one(&mut *tx)
            .await
            .map_err(conflict("task id"))?;
        if price > 0 {
            Self::charge_in(&mut tx, new.user_id, new.key_id, &new.mj_id, price, new.submit_time).await?;
        }
        tx.commit().await?;
        Ok(task)
    }

    async fn task(&self, mj_id: &str) -> StoreResult<Option<Task>> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE mj_id = $1");
        Ok(sqlx::query_as(&sql).bind(mj_id).fetch_optional(&self.pool).await?)
    }

    async fn user_tasks_by_ids(&self, user_id: i64, mj_ids: &[String]) -> StoreResult<Vec<Task>> {
        if mj_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE user_id = $1 AND mj_id IN ({})",
            placeholders(2, mj_ids.len())
        );
        let mut query = sqlx::query_as(&sql).bind(user_id);
        for id in mj_ids {
            query = query.bind(id.as_str());
        }
        Ok(query.fetch_all(&self.pool).await?)
    }

    async fn recent_user_tasks(&self, user_id: i64, limit: i64) -> StoreResult<Vec<Task>> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE user_id = $1 ORDER BY id DESC LIMIT $2"
        );
        Ok(sqlx::query_as(&sql)
            .bind(user_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn task_by_upstream(&self, channel_id: i64, upstream_id: &str) -> StoreResult<Option<Task>> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE channel_id = $1 AND upstream_id = $2"
        );
        Ok(sqlx::query_as(&sql)
            .bind(channel_id)
            .bind(upstream_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn mark_forwarded(
        &self,
        mj_id: &str,
        channel_id: i64,
        upstream_id: &str,
        status: TaskStatus,
    ) -> StoreResult<()> {
        let now = crate::domain::ids::now_ms();
        let sql = format!(
            "UPDATE tasks SET channel_id = $1, upstream_id = $2, status = $3, updated_at = $4 \
             WHERE mj_id = $5 AND upstream_id IS NULL AND {UNFINISHED} RETURNING {TASK_COLUMNS}"
        );
        let mut tx = self.pool.begin().await?;
        let forwarded: Option<Task> = sqlx::query_as(&sql)
            .bind(channel_id)
            .bind(upstream_id)
            .bind(status.as_str())
            .bind(now)
            .bind(mj_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(conflict("upstream task"))?;
        // A task that ended meanwhile (failed and refunded as an interrupted submission)
        // stays ended: it must not run on uncharged.
        let Some(task) = &forwarded else {
            return Err(StoreError::NotFound(format!("unfinished, unforwarded task {mj_id}")));
        };
        Self::queue_notification_in(&mut tx, task, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn begin_modal_task(&self, mj_id: &str, price: i64, now: i64) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "UPDATE tasks SET status = 'SUBMITTED', progress = '0%', quota = $1, updated_at = $2 \
             WHERE mj_id = $3 AND status = 'MODAL' RETURNING {TASK_COLUMNS}"
        );
        let begun: Option<Task> = sqlx::query_as(&sql)
            .bind(price)
            .bind(now)
            .bind(mj_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(task) = begun else {
            return Ok(false);
        };
        if price > 0 {
            Self::charge_in(&mut tx, task.user_id, task.key_id, mj_id, price, now).await?;
        }
        Self::queue_notification_in(&mut tx, &task, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn update_task(&self, seen: &Task, update: &TaskUpdate, now: i64) -> StoreResult<Option<Task>> {
        let sql = format!(
            "UPDATE tasks SET status = $1, progress = $2, prompt = $3, prompt_en = $4, \
             description = $5, start_time = $6, finish_time = $7, upstream_image_url = $8, \
             video_url = $9, video_urls = $10, fail_reason = $11, buttons = $12, \
             properties = $13, missing_polls = 0, updated_at = $14 \
             WHERE mj_id = $15 AND status = $16 AND progress = $17 AND {UNFINISHED} \
             RETURNING {TASK_COLUMNS}"
        );
        let mut tx = self.pool.begin().await?;
        let updated: Option<Task> = sqlx::query_as(&sql)
            .bind(update.status.as_str())
            .bind(update.progress.as_str())
            .bind(update.prompt.as_str())
            .bind(update.prompt_en.as_str())
            .bind(update.description.as_str())
            .bind(update.start_time)
            .bind(update.finish_time)
            .bind(update.upstream_image_url.as_deref())
            .bind(update.video_url.as_deref())
            .bind(json(&update.video_urls))
            .bind(update.fail_reason.as_deref())
            .bind(json(&update.buttons))
            .bind(json(&update.properties))
            .bind(now)
            .bind(seen.mj_id.as_str())
            .bind(seen.status.as_str())
            .bind(seen.progress.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(task) = &updated {
            match task.status {
                TaskStatus::Failure => {
                    Self::refund_in(&mut tx, &seen.mj_id, now).await?;
                }
                TaskStatus::Success => Self::queue_copies_in(&mut tx, task, now).await?,
                _ => {}
            }
            // Clients hear of status and progress; the other fields ride along.
            if task.status != seen.status || task.progress != seen.progress {
                Self::queue_notification_in(&mut tx, task, now).await?;
            }
        }
        tx.commit().await?;
        Ok(updated)
    }

    async fn fail_task(&self, mj_id: &str, reason: &str, now: i64) -> StoreResult<Option<Task>> {
        let sql = format!(
            "UPDATE tasks SET status = 'FAILURE', fail_reason = $1, finish_time = $2, \
             updated_at = $2 WHERE mj_id = $3 AND {UNFINISHED} RETURNING {TASK_COLUMNS}"
        );
        let mut tx = self.pool.begin().await?;
        let failed: Option<Task> = sqlx::query_as(&sql)
            .bind(reason)
            .bind(now)
            .bind(mj_id)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(task) = &failed {
            Self::refund_in(&mut tx, mj_id, now).await?;
            Self::queue_notification_in(&mut tx, task, now).await?;
        }
        tx.commit().await?;
        Ok(failed)
    }

    async fn unfinished_on_channel(&self, channel_id: i64, after_id: i64, limit: i64) -> StoreResult<Vec<Task>> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE channel_id = $1 AND id > $2 \
             AND upstream_id IS NOT NULL AND {UNFINISHED} ORDER BY id LIMIT $3"
        );
        Ok(sqlx::query_as(&sql)
            .bind(channel_id)
            .bind(after_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn note_missing(&self, mj_ids: &[String]) -> StoreResult<Vec<(String, i64)>> {
        if mj_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "UPDATE tasks SET missing_polls = missing_polls + 1 \
             WHERE {UNFINISHED} AND mj_id IN ({}) RETURNING mj_id, missing_polls",
            placeholders(1, mj_ids.len())
        );
        let mut query = sqlx::query_as(&sql);
        for id in mj_ids {
            query = query.bind(id.as_str());
        }
        Ok(query.fetch_all(&self.pool).await?)
    }

    async fn stale_tasks(&self, before: i64, unforwarded_only: bool, limit: i64) -> StoreResult<Vec<Task>> {
        let forwarded = if unforwarded_only { "AND upstream_id IS NULL" } else { "" };
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE submit_time < $1 AND {UNFINISHED} \
             {forwarded} ORDER BY id LIMIT $2"
        );
        Ok(sqlx::query_as(&sql)
            .bind(before)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }
});

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_string())
}

impl_for_sql!(TaskHistory {
    async fn list_tasks(&self, filter: &TaskFilter) -> StoreResult<(Vec<Task>, i64)> {
        let mut conditions = Vec::new();
        let mut args: Vec<Arg> = Vec::new();
        let mut push = |condition: &str, arg: Arg| {
            args.push(arg);
            conditions.push(condition.replace('?', &format!("${}", args.len())));
        };
        if let Some(user_id) = filter.user_id {
            push("user_id = ?", Arg::Int(user_id));
        }
        if let Some(channel_id) = filter.channel_id {
            push("channel_id = ?", Arg::Int(channel_id));
        }
        if let Some(mj_id) = &filter.mj_id {
            push("mj_id = ?", Arg::Text(mj_id.clone()));
        }
        if let Some(start) = filter.submitted_from {
            push("submit_time >= ?", Arg::Int(start));
        }
        if let Some(end) = filter.submitted_to {
            push("submit_time <= ?", Arg::Int(end));
        }
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let count_sql = format!("SELECT COUNT(*) FROM tasks {where_clause}");
        let mut count = sqlx::query_as::<DB, (i64,)>(&count_sql);
        for arg in &args {
            count = match arg {
                Arg::Int(v) => count.bind(*v),
                Arg::Text(v) => count.bind(v.as_str()),
            };
        }
        let (total,) = count.fetch_one(&self.pool).await?;
        let page_sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks {where_clause} ORDER BY id DESC LIMIT ${} OFFSET ${}",
            args.len() + 1,
            args.len() + 2
        );
        let mut page = sqlx::query_as::<DB, Task>(&page_sql);
        for arg in &args {
            page = match arg {
                Arg::Int(v) => page.bind(*v),
                Arg::Text(v) => page.bind(v.as_str()),
            };
        }
        let tasks = page
            .bind(filter.limit)
            .bind(filter.offset)
            .fetch_all(&self.pool)
            .await?;
        Ok((tasks, total))
    }
});

/// A value bound to a dynamically built query.
enum Arg {
    Int(i64),
    Text(String),
}
