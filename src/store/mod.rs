//! Persistence: one set of traits, implemented for SQLite and PostgreSQL by [`SqlStore`].
//!
//! Business code holds an `Arc<dyn Store>` and never asks which database is behind it.

mod records;
mod sql;

pub use records::*;
pub use sql::{SqlStore, open};

use crate::domain::prices::PriceRule;
use async_trait::async_trait;
use std::collections::HashMap;

/// A store failure. Conflicts are the caller's to handle; the rest are internal errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    Conflict(String),
    #[error("quota insufficient: {0}")]
    QuotaInsufficient(&'static str),
    #[error("{0} not found")]
    NotFound(String),
    #[error("unsupported database url `{0}`: use sqlite://FILE or postgres://...")]
    UnsupportedUrl(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything the gateway keeps.
pub trait Store:
    AccountStore
    + ChannelStore
    + TaskStore
    + TaskHistory
    + CoordinationStore
    + TaskFileStore
    + DeliveryStore
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: AccountStore
        + ChannelStore
        + TaskStore
        + TaskHistory
        + CoordinationStore
        + TaskFileStore
        + DeliveryStore
        + Send
        + Sync
        + 'static
{
}

/// What several gateway processes on one database agree through.
#[async_trait]
pub trait CoordinationStore {
    /// Takes the lease `name` for `holder` until `until_ms`, or renews it when `holder`
    /// already has it; false while another holder's lease runs (`until_ms > now_ms`).
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> StoreResult<bool>;
    /// Moves the end of `holder`'s lease (earlier, to hand the work on sooner).
    async fn extend_lease(&self, name: &str, holder: &str, until_ms: i64) -> StoreResult<()>;
    /// Counts one request of a key in the window starting at `window_start`; returns the
    /// window's count so far.
    async fn count_request(&self, key_id: i64, window_start: i64) -> StoreResult<i64>;
    async fn prune_rate_counters(&self, before: i64) -> StoreResult<()>;
    /// The database answers and its schema is the one this binary expects.
    async fn check_ready(&self) -> StoreResult<bool>;
}

/// Users, their API keys, and gateway-wide settings.
#[async_trait]
pub trait AccountStore {
    /// A setting, created with `value` when absent; concurrent callers all get the first value.
    async fn setting_or_insert(&self, name: &str, value: &str) -> StoreResult<String>;

    async fn create_user(&self, new: &NewUser) -> StoreResult<User>;
    async fn user(&self, id: i64) -> StoreResult<Option<User>>;
    async fn user_by_name(&self, name: &str) -> StoreResult<Option<User>>;
    /// The user whose access token has this hash.
    async fn user_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<User>>;
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    async fn set_user_enabled(&self, id: i64, enabled: bool) -> StoreResult<Option<User>>;
    /// Adds `amount` to the balance, with its ledger row.
    async fn top_up(&self, user_id: i64, amount: i64) -> StoreResult<User>;

    async fn create_key(&self, new: &NewKey) -> StoreResult<ApiKey>;
    /// The key with this hash and its user.
    async fn key_by_hash(&self, key_hash: &str) -> StoreResult<Option<(ApiKey, User)>>;
    async fn list_keys(&self, user_id: Option<i64>) -> StoreResult<Vec<ApiKey>>;
    async fn set_key_enabled(&self, id: i64, enabled: bool) -> StoreResult<Option<ApiKey>>;
    /// The secret that signs the notifications of a key's tasks.
    async fn key_hook_secret(&self, key_id: i64) -> StoreResult<Option<String>>;

    /// Configured prices (the defaults apply where none is set).
    async fn list_prices(&self) -> StoreResult<Vec<PriceRule>>;
    async fn set_price(&self, rule: &PriceRule) -> StoreResult<()>;

    /// Recomputes balances, key usage and per-task charges from the ledger; lists every
    /// difference.
    async fn ledger_check(&self) -> StoreResult<Vec<LedgerProblem>>;
}

/// Upstream channels.
#[async_trait]
pub trait ChannelStore {
    async fn create_channel(&self, new: &NewChannel) -> StoreResult<Channel>;
    async fn channel(&self, id: i64) -> StoreResult<Option<Channel>>;
    async fn list_channels(&self) -> StoreResult<Vec<Channel>>;
    /// Applies the change; `None` when there is no such channel.
    async fn update_channel(&self, id: i64, change: &ChannelChange)
    -> StoreResult<Option<Channel>>;
    /// Unfinished tasks per channel (channels without any are left out).
    async fn in_flight_by_channel(&self) -> StoreResult<HashMap<i64, i64>>;
    /// Puts a task on a channel if the channel holds fewer than `cap` other unfinished tasks.
    /// The count and the claim are one transaction that holds the channel's row, so that
    /// processes racing for its last slot cannot both take it.
    async fn reserve_channel(&self, mj_id: &str, channel_id: i64, cap: i64) -> StoreResult<bool>;
}

/// Tasks and their lifecycle.
///
/// Every method that changes a task's status or progress also queues a notification of the
/// new state in the same transaction, when the task has a `notifyHook` and a channel has
/// taken it (so that its client knows its id): see [`DeliveryStore`].
#[async_trait]
pub trait TaskStore {
    /// Inserts a task and charges `price` for it in one transaction: `Conflict` when its
    /// `mj_id` is taken, `QuotaInsufficient` (and nothing written) when the user's balance or
    /// the key's limit is short.
    async fn insert_task(&self, new: &NewTask, price: i64) -> StoreResult<Task>;
    async fn task(&self, mj_id: &str) -> StoreResult<Option<Task>>;
    /// The user's tasks among `mj_ids`, in no particular order.
    async fn user_tasks_by_ids(&self, user_id: i64, mj_ids: &[String]) -> StoreResult<Vec<Task>>;
    /// The user's latest tasks, newest first.
    async fn recent_user_tasks(&self, user_id: i64, limit: i64) -> StoreResult<Vec<Task>>;
    /// The task of `upstream_id` on a channel.
    async fn task_by_upstream(
        &self,
        channel_id: i64,
        upstream_id: &str,
    ) -> StoreResult<Option<Task>>;

    /// Records that a channel accepted the task under `upstream_id`.
    /// `Conflict` when another task already holds that upstream id; `NotFound` when the task
    /// has ended or was forwarded already.
    async fn mark_forwarded(
        &self,
        mj_id: &str,
        channel_id: i64,
        upstream_id: &str,
        status: crate::domain::TaskStatus,
    ) -> StoreResult<()>;

    /// Moves a task from `MODAL` to `SUBMITTED` and charges `price` for it; false when it was
    /// not in `MODAL`, `QuotaInsufficient` (and no change) when the quota is short.
    async fn begin_modal_task(&self, mj_id: &str, price: i64, now: i64) -> StoreResult<bool>;

    /// Applies an upstream report if the task still is as `seen` (same status and progress)
    /// and not final. Returns the updated task, or `None` when it had changed meanwhile.
    /// A report that ends the task in `FAILURE` refunds its charge in the same transaction;
    /// one that ends it in `SUCCESS` queues the copy of its image and video.
    async fn update_task(
        &self,
        seen: &Task,
        update: &TaskUpdate,
        now: i64,
    ) -> StoreResult<Option<Task>>;

    /// Ends an unfinished task in `FAILURE` and refunds its charge, in one transaction.
    /// Returns the task when this call ended it, `None` when it was already final.
    async fn fail_task(&self, mj_id: &str, reason: &str, now: i64) -> StoreResult<Option<Task>>;

    /// Unfinished tasks that a channel holds, in id order after `after_id`.
    async fn unfinished_on_channel(
        &self,
        channel_id: i64,
        after_id: i64,
        limit: i64,
    ) -> StoreResult<Vec<Task>>;
    /// Counts one more poll that did not find each of these tasks; returns the new counts.
    async fn note_missing(&self, mj_ids: &[String]) -> StoreResult<Vec<(String, i64)>>;
    /// Unfinished tasks submitted before `before`; with `unforwarded_only`, just those that
    /// never reached a channel (their submission was cut off).
    async fn stale_tasks(
        &self,
        before: i64,
        unforwarded_only: bool,
        limit: i64,
    ) -> StoreResult<Vec<Task>>;
}

/// Client notifications waiting to be sent, and the record of every attempt.
#[async_trait]
pub trait DeliveryStore {
    /// Leases up to `limit` pending deliveries that are due at `now` and not leased, until
    /// `lease_until`: for each task only its first pending one, so that a task's states go
    /// out in order. A delivery leased by one worker (or process) is not handed to another
    /// until the lease ends.
    async fn claim_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> StoreResult<Vec<Delivery>>;
    /// Records an attempt and what follows it, in one transaction; the lease ends. Only the
    /// holder of the lease `lease_until` moves the delivery on: a worker whose lease ran out
    /// (and was taken over) records its attempt but changes nothing else.
    async fn record_attempt(
        &self,
        attempt: &DeliveryAttempt,
        next: DeliveryNext,
        lease_until: i64,
    ) -> StoreResult<()>;
    /// Ends the leases of deliveries that were not attempted after all (a worker stopping).
    async fn release_deliveries(&self, ids: &[i64]) -> StoreResult<()>;
    /// A task's deliveries in order, each with its attempts in order.
    async fn task_deliveries(
        &self,
        mj_id: &str,
    ) -> StoreResult<Vec<(Delivery, Vec<DeliveryAttempt>)>>;
}

/// Task histories for the management API.
#[async_trait]
pub trait TaskHistory {
    /// One page of tasks matching `filter`, newest first, and how many match in all.
    async fn list_tasks(&self, filter: &TaskFilter) -> StoreResult<(Vec<Task>, i64)>;
}

/// Copies of task files in the gateway's storage, and the jobs that make them. A job is
/// claimed under a lease, so that several gateway processes can share the work and a crashed
/// worker's job is taken up again once its lease runs out.
#[async_trait]
pub trait TaskFileStore {
    /// Claims up to `limit` pending jobs that are due at `now` and not leased, leasing them
    /// until `lease_until` and counting the attempt.
    async fn claim_file_copies(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> StoreResult<Vec<TaskFile>>;
    /// Records the copy of a claimed job. False when the claim was lost (its lease ran out
    /// and another worker took the job).
    async fn finish_file_copy(
        &self,
        claimed: &TaskFile,
        stored: &StoredFile,
        now: i64,
    ) -> StoreResult<bool>;
    /// Puts a claimed job back, to be tried again at `next_attempt_at`.
    async fn retry_file_copy(
        &self,
        claimed: &TaskFile,
        error: &str,
        next_attempt_at: i64,
        now: i64,
    ) -> StoreResult<()>;
    /// Gives up on a claimed job.
    async fn fail_file_copy(&self, claimed: &TaskFile, error: &str, now: i64) -> StoreResult<()>;
    async fn task_file(&self, mj_id: &str, kind: FileKind) -> StoreResult<Option<TaskFile>>;
}
