//! Task files: the copy jobs (queued with the task's success, claimed under a lease) and the
//! copies they record.

use super::impl_for_sql;
use crate::domain::TaskStatus;
use crate::store::{FileKind, StoreResult, StoredFile, Task, TaskFile};
use sqlx::Transaction;

const FILE_COLUMNS: &str = "id, mj_id, kind, source_url, state, attempts, next_attempt_at, \
     lease_until, last_error, storage_key, content_type, size, etag";

/// SQL condition: a job a worker may take now (`$2` is now).
const DUE: &str = "state = 'pending' AND next_attempt_at <= $2 AND lease_until <= $2";

impl_for_sql!(inherent {
    /// Queues the copy of a task's image and video when the task has just succeeded.
    pub(super) async fn queue_copies_in(
        tx: &mut Transaction<'static, DB>,
        task: &Task,
        now: i64,
    ) -> StoreResult<()> {
        if task.status != TaskStatus::Success {
            return Ok(());
        }
        let sources = [
            (FileKind::Image, task.upstream_image_url.as_deref()),
            (FileKind::Video, task.video_url.as_deref()),
        ];
        for (kind, url) in sources {
            let Some(url) = url.filter(|u| !u.is_empty()) else {
                continue;
            };
            sqlx::query(
                "INSERT INTO task_files (mj_id, kind, source_url, next_attempt_at, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $4, $4) ON CONFLICT (mj_id, kind) DO NOTHING",
            )
            .bind(task.mj_id.as_str())
            .bind(kind.as_str())
            .bind(url)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }
});

impl_for_sql!(TaskFileStore {
    async fn claim_file_copies(&self, now: i64, lease_until: i64, limit: i64) -> StoreResult<Vec<TaskFile>> {
        // The outer condition repeats the inner one: on PostgreSQL a competing claimer that
        // waited for the row lock re-checks it and skips the row the other one just leased.
        let sql = format!(
            "UPDATE task_files SET lease_until = $1, attempts = attempts + 1, updated_at = $2 \
             WHERE {DUE} AND id IN \
             (SELECT id FROM task_files WHERE {DUE} ORDER BY next_attempt_at LIMIT $3) \
             RETURNING {FILE_COLUMNS}"
        );
        Ok(sqlx::query_as(&sql)
            .bind(lease_until)
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn finish_file_copy(&self, claimed: &TaskFile, stored: &StoredFile, now: i64) -> StoreResult<bool> {
        let done: Option<(i64,)> = sqlx::query_as(
            "UPDATE task_files SET state = 'done', storage_key = $1, content_type = $2, \
             size = $3, etag = $4, last_error = NULL, lease_until = 0, updated_at = $5 \
             WHERE id = $6 AND attempts = $7 AND state = 'pending' RETURNING id",
        )
        .bind(stored.storage_key.as_str())
        .bind(stored.content_type.as_str())
        .bind(stored.size)
        .bind(stored.etag.as_str())
        .bind(now)
        .bind(claimed.id)
        .bind(claimed.attempts)
        .fetch_optional(&self.pool)
        .await?;
        Ok(done.is_some())
    }

    async fn retry_file_copy(&self, claimed: &TaskFile, error: &str, next_attempt_at: i64, now: i64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE task_files SET last_error = $1, next_attempt_at = $2, lease_until = 0, \
             updated_at = $3 WHERE id = $4 AND attempts = $5 AND state = 'pending'",
        )
        .bind(error)
        .bind(next_attempt_at)
        .bind(now)
        .bind(claimed.id)
        .bind(claimed.attempts)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn fail_file_copy(&self, claimed: &TaskFile, error: &str, now: i64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE task_files SET state = 'failed', last_error = $1, lease_until = 0, \
             updated_at = $2 WHERE id = $3 AND attempts = $4 AND state = 'pending'",
        )
        .bind(error)
        .bind(now)
        .bind(claimed.id)
        .bind(claimed.attempts)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn task_file(&self, mj_id: &str, kind: FileKind) -> StoreResult<Option<TaskFile>> {
        let sql = format!("SELECT {FILE_COLUMNS} FROM task_files WHERE mj_id = $1 AND kind = $2");
        Ok(sqlx::query_as(&sql)
            .bind(mj_id)
            .bind(kind.as_str())
            .fetch_optional(&self.pool)
            .await?)
    }
});
