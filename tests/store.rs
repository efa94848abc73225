//! One store suite, run against SQLite and PostgreSQL.

mod common;

use common::{Db, test_db};
use mjgate::admin;
use mjgate::domain::ids::now_ms;
use mjgate::domain::secrets::hash_secret;
use mjgate::domain::{BotType, TaskAction, TaskStatus};
use mjgate::store::{
    self, ChannelChange, DeliveryAttempt, DeliveryNext, DeliveryState, NewChannel, NewTask, Role,
    Store, StoreError, Task, TaskFilter, TaskUpdate,
};
use std::sync::Arc;

async fn open(db: Db) -> (Arc<dyn Store>, common::TestDb) {
    let test_db = test_db(db).await;
    let store = store::open(&test_db.url).await.unwrap();
    (store, test_db)
}

fn new_task(mj_id: &str, user_id: i64) -> NewTask {
    NewTask {
        mj_id: mj_id.to_string(),
        user_id,
        key_id: None,
        parent_id: None,
        action: TaskAction::Imagine,
        status: TaskStatus::NotStart,
        prompt: "a cat".to_string(),
        description: "/imagine a cat".to_string(),
        state: Some("st".to_string()),
        bot_type: BotType::MidJourney,
        mode: None,
        custom_id: None,
        notify_hook: None,
        submit_time: now_ms(),
    }
}

fn update(status: TaskStatus, progress: &str) -> TaskUpdate {
    TaskUpdate {
        status,
        progress: progress.to_string(),
        prompt: "a cat".to_string(),
        prompt_en: "a cat".to_string(),
        description: "/imagine a cat".to_string(),
        start_time: 1,
        finish_time: 0,
        upstream_image_url: Some("http://up/x.png".to_string()),
        video_url: None,
        video_urls: vec![],
        fail_reason: None,
        buttons: vec![],
        properties: Default::default(),
    }
}

async fn accounts(db: Db) {
    let (store, _db) = open(db).await;
    let created = admin::create_user(&*store, "carol", Role::Admin)
        .await
        .unwrap();
    assert_eq!(created.user.role, Role::Admin);
    assert_eq!(created.user.balance, 0);
    assert!(matches!(
        admin::create_user(&*store, "carol", Role::User).await,
        Err(StoreError::Conflict(_))
    ));
    let same = admin::user_or_create(&*store, "carol").await.unwrap();
    assert_eq!(same.id, created.user.id);

    let key = admin::create_key(&*store, &same, Some(100), None)
        .await
        .unwrap();
    let (found, owner) = store
        .key_by_hash(&hash_secret(&key.secret))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.id, owner.id), (key.key.id, same.id));
    assert_eq!(found.quota_limit, Some(100));
    assert!(
        store
            .key_by_hash(&hash_secret("sk-nope"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.list_keys(Some(same.id)).await.unwrap().len(), 1);
    assert_eq!(store.list_keys(Some(same.id + 99)).await.unwrap().len(), 0);

    let first = store
        .setting_or_insert("signing_secret", "one")
        .await
        .unwrap();
    let second = store
        .setting_or_insert("signing_secret", "two")
        .await
        .unwrap();
    assert_eq!((first.as_str(), second.as_str()), ("one", "one"));
}

async fn channels(db: Db) {
    let (store, _db) = open(db).await;
    for (name, priority) in [("low", 0), ("high", 5)] {
        store
            .create_channel(&NewChannel {
                name: name.to_string(),
                base_url: "http://127.0.0.1:1".to_string(),
                secret: "s".to_string(),
                priority,
                is_local: true,
                callbacks: name == "high",
                ..NewChannel::default()
            })
            .await
            .unwrap();
    }
    let names: Vec<String> = store
        .list_channels()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, vec!["high", "low"]);
    let first = store.list_channels().await.unwrap()[0].clone();
    assert!(first.enabled && first.is_local && first.callbacks);
    assert_eq!(store.channel(first.id).await.unwrap().unwrap().name, "high");
    assert_eq!(first.modes, "FAST,RELAX,TURBO");

    // Only what a change names changes; a cap of 0 removes the cap.
    let capped = ChannelChange {
        enabled: Some(false),
        weight: Some(4),
        modes: Some("RELAX".to_string()),
        max_in_flight: Some(7),
        ..ChannelChange::default()
    };
    let changed = store
        .update_channel(first.id, &capped)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            changed.enabled,
            changed.weight,
            changed.modes.as_str(),
            changed.max_in_flight
        ),
        (false, 4, "RELAX", Some(7))
    );
    assert_eq!(
        (
            changed.name.as_str(),
            changed.priority,
            changed.is_local,
            changed.callbacks
        ),
        ("high", 5, true, true)
    );
    let uncapped = ChannelChange {
        max_in_flight: Some(0),
        callbacks: Some(false),
        ..ChannelChange::default()
    };
    let changed = store
        .update_channel(first.id, &uncapped)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            changed.max_in_flight,
            changed.weight,
            changed.enabled,
            changed.callbacks
        ),
        (None, 4, false, false)
    );
    assert!(
        store
            .update_channel(999, &uncapped)
            .await
            .unwrap()
            .is_none()
    );
    let taken = ChannelChange {
        name: Some("low".to_string()),
        ..ChannelChange::default()
    };
    assert!(matches!(
        store.update_channel(first.id, &taken).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store.in_flight_by_channel().await.unwrap().is_empty());
}

async fn task_lifecycle(db: Db) {
    let (store, _db) = open(db).await;
    let user = admin::user_or_create(&*store, "dave").await.unwrap();
    let channel = store
        .create_channel(&NewChannel {
            name: "c".to_string(),
            base_url: "http://127.0.0.1:1".to_string(),
            is_local: true,
            ..NewChannel::default()
        })
        .await
        .unwrap();
    let task = store
        .insert_task(&new_task("1700000000000001", user.id), 0)
        .await
        .unwrap();
    assert_eq!(task.status, TaskStatus::NotStart);
    assert_eq!(task.state.as_deref(), Some("st"));
    assert!(matches!(
        store
            .insert_task(&new_task("1700000000000001", user.id), 0)
            .await,
        Err(StoreError::Conflict(_))
    ));

    store
        .mark_forwarded(&task.mj_id, channel.id, "up-1", TaskStatus::Submitted)
        .await
        .unwrap();
    let other = store
        .insert_task(&new_task("1700000000000002", user.id), 0)
        .await
        .unwrap();
    assert!(matches!(
        store
            .mark_forwarded(&other.mj_id, channel.id, "up-1", TaskStatus::Submitted)
            .await,
        Err(StoreError::Conflict(_))
    ));
    let held = store
        .task_by_upstream(channel.id, "up-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.mj_id, task.mj_id);
    // A task that ended before its channel answered stays ended.
    let late = store
        .insert_task(&new_task("1700000000000009", user.id), 0)
        .await
        .unwrap();
    store
        .fail_task(&late.mj_id, "interrupted", 1)
        .await
        .unwrap();
    assert!(matches!(
        store
            .mark_forwarded(&late.mj_id, channel.id, "up-9", TaskStatus::Submitted)
            .await,
        Err(StoreError::NotFound(_))
    ));
    let ended = store.task(&late.mj_id).await.unwrap().unwrap();
    assert_eq!(
        (ended.status, ended.upstream_id),
        (TaskStatus::Failure, None)
    );

    // Compare-and-set: an update based on an old view does nothing.
    let seen = store.task(&task.mj_id).await.unwrap().unwrap();
    let moved = store
        .update_task(&seen, &update(TaskStatus::InProgress, "46%"), now_ms())
        .await
        .unwrap();
    assert_eq!(moved.unwrap().progress, "46%");
    assert!(
        store
            .update_task(&seen, &update(TaskStatus::InProgress, "15%"), now_ms())
            .await
            .unwrap()
            .is_none()
    );

    let unfinished = store
        .unfinished_on_channel(channel.id, 0, 10)
        .await
        .unwrap();
    assert_eq!(unfinished.len(), 1);
    assert_eq!(
        store
            .note_missing(std::slice::from_ref(&task.mj_id))
            .await
            .unwrap(),
        vec![(task.mj_id.clone(), 1)]
    );
    assert_eq!(
        store
            .note_missing(std::slice::from_ref(&task.mj_id))
            .await
            .unwrap()[0]
            .1,
        2
    );

    // Ending is exactly once.
    assert!(
        store
            .fail_task(&task.mj_id, "gone", now_ms())
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .fail_task(&task.mj_id, "gone again", now_ms())
            .await
            .unwrap()
            .is_none()
    );
    let failed = store.task(&task.mj_id).await.unwrap().unwrap();
    assert_eq!(
        (failed.status, failed.fail_reason.as_deref()),
        (TaskStatus::Failure, Some("gone"))
    );
    let after = store.task(&task.mj_id).await.unwrap().unwrap();
    assert!(
        store
            .update_task(&after, &update(TaskStatus::Success, "100%"), now_ms())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .unfinished_on_channel(channel.id, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Stale and cut-off submissions.
    let stale = store.stale_tasks(now_ms() + 1, true, 10).await.unwrap();
    assert_eq!(
        stale.iter().map(|t| t.mj_id.as_str()).collect::<Vec<_>>(),
        vec![other.mj_id.as_str()]
    );

    let listed = store
        .user_tasks_by_ids(
            user.id,
            &[task.mj_id.clone(), "9999999999999999".to_string()],
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    let recent = store.recent_user_tasks(user.id, 1).await.unwrap();
    assert_eq!(recent[0].mj_id, late.mj_id, "the newest");
}

async fn modal_starts_once(db: Db) {
    let (store, _db) = open(db).await;
    let user = admin::user_or_create(&*store, "erin").await.unwrap();
    let mut modal = new_task("1700000000000003", user.id);
    modal.status = TaskStatus::Modal;
    store.insert_task(&modal, 0).await.unwrap();
    let (a, b) = tokio::join!(
        store.begin_modal_task(&modal.mj_id, 0, now_ms()),
        store.begin_modal_task(&modal.mj_id, 0, now_ms())
    );
    assert!(a.unwrap() ^ b.unwrap(), "exactly one begins the task");
}

async fn charges_and_refunds(db: Db) {
    let (store, _db) = open(db).await;
    let user = admin::user_or_create(&*store, "fay").await.unwrap();
    let key = admin::create_key(&*store, &user, Some(150), None)
        .await
        .unwrap()
        .key;
    store.top_up(user.id, 120).await.unwrap();
    let mut task = new_task("1700000000000010", user.id);
    task.key_id = Some(key.id);
    store.insert_task(&task, 100).await.unwrap();

    // Short of balance: nothing is written, not even the task.
    let mut second = new_task("1700000000000011", user.id);
    second.key_id = Some(key.id);
    assert!(matches!(
        store.insert_task(&second, 100).await,
        Err(StoreError::QuotaInsufficient(_))
    ));
    assert!(store.task(&second.mj_id).await.unwrap().is_none());
    store.top_up(user.id, 1000).await.unwrap();
    // Short of the key's limit (100 used of 150).
    assert!(matches!(
        store.insert_task(&second, 100).await,
        Err(StoreError::QuotaInsufficient(_))
    ));

    // Failing refunds once, to the user and to the key.
    store
        .fail_task(&task.mj_id, "boom", now_ms())
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .fail_task(&task.mj_id, "boom", now_ms())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.user(user.id).await.unwrap().unwrap().balance, 1120);
    assert_eq!(
        store.list_keys(Some(user.id)).await.unwrap()[0].quota_used,
        0
    );
    assert!(store.ledger_check().await.unwrap().is_empty());

    // A pop-up task is charged when it begins, and refused without change when short.
    let mut modal = new_task("1700000000000012", user.id);
    modal.status = TaskStatus::Modal;
    modal.key_id = Some(key.id);
    store.insert_task(&modal, 0).await.unwrap();
    assert!(matches!(
        store.begin_modal_task(&modal.mj_id, 200, now_ms()).await,
        Err(StoreError::QuotaInsufficient(_))
    ));
    assert_eq!(
        store.task(&modal.mj_id).await.unwrap().unwrap().status,
        TaskStatus::Modal
    );
    assert!(
        store
            .begin_modal_task(&modal.mj_id, 50, now_ms())
            .await
            .unwrap()
    );
    let started = store.task(&modal.mj_id).await.unwrap().unwrap();
    assert_eq!((started.status, started.quota), (TaskStatus::Submitted, 50));
    assert_eq!(store.user(user.id).await.unwrap().unwrap().balance, 1070);

    // A report of failure refunds in the same step.
    let failure = TaskUpdate {
        fail_reason: Some("x".into()),
        ..update(TaskStatus::Failure, "0%")
    };
    assert!(
        store
            .update_task(&started, &failure, now_ms())
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.user(user.id).await.unwrap().unwrap().balance, 1120);
    assert!(store.ledger_check().await.unwrap().is_empty());
}

async fn history_pages(db: Db) {
    let (store, _db) = open(db).await;
    let user = admin::user_or_create(&*store, "gus").await.unwrap();
    for i in 0..7 {
        let mut task = new_task(&format!("17000000000001{i:02}"), user.id);
        task.submit_time = 1_000 * (i + 1);
        store.insert_task(&task, 0).await.unwrap();
    }
    let filter = TaskFilter {
        user_id: Some(user.id),
        limit: 3,
        offset: 3,
        ..Default::default()
    };
    let (page, total) = store.list_tasks(&filter).await.unwrap();
    assert_eq!(total, 7);
    assert_eq!(
        page.iter().map(|t| t.submit_time).collect::<Vec<_>>(),
        vec![4000, 3000, 2000]
    );
    let ranged = TaskFilter {
        submitted_from: Some(2000),
        submitted_to: Some(3000),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.list_tasks(&ranged).await.unwrap().1, 2);
    let one = TaskFilter {
        mj_id: Some("1700000000000105".into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.list_tasks(&one).await.unwrap().0[0].submit_time, 6000);
}

/// Notifications are queued with each change of status or progress of a hooked task that a
/// channel took, and handed out one per task, in order, under a lease.
async fn deliveries_in_order_under_lease(db: Db) {
    let (store, _db) = open(db).await;
    let user = admin::user_or_create(&*store, "erin").await.unwrap();
    let key = admin::create_key(&*store, &user, None, None).await.unwrap();
    assert_eq!(
        store.key_hook_secret(key.key.id).await.unwrap(),
        Some(key.hook_secret.clone())
    );
    let channel = store
        .create_channel(&NewChannel {
            name: "c".to_string(),
            base_url: "http://127.0.0.1:1".to_string(),
            is_local: true,
            callbacks: true,
            ..NewChannel::default()
        })
        .await
        .unwrap();
    let hooked = |mj_id: &str| NewTask {
        key_id: Some(key.key.id),
        notify_hook: Some("https://client.example/hook".to_string()),
        ..new_task(mj_id, user.id)
    };
    let task = store
        .insert_task(&hooked("1700000000000301"), 0)
        .await
        .unwrap();
    // Not taken by a channel yet: its client has no id to be told about.
    assert!(store.task_deliveries(&task.mj_id).await.unwrap().is_empty());
    store
        .mark_forwarded(&task.mj_id, channel.id, "up-301", TaskStatus::Submitted)
        .await
        .unwrap();
    let seen = store.task(&task.mj_id).await.unwrap().unwrap();
    let seen = store
        .update_task(&seen, &update(TaskStatus::InProgress, "15%"), now_ms())
        .await
        .unwrap()
        .unwrap();
    // A change of other fields only is not a new state for the client.
    let mut quiet = update(TaskStatus::InProgress, "15%");
    quiet.prompt_en = "a cat, translated".to_string();
    store
        .update_task(&seen, &quiet, now_ms())
        .await
        .unwrap()
        .unwrap();
    let listed = store.task_deliveries(&task.mj_id).await.unwrap();
    let states: Vec<(i64, TaskStatus, &str)> = listed
        .iter()
        .map(|(d, _)| (d.seq, d.status, d.progress.as_str()))
        .collect();
    assert_eq!(
        states,
        vec![
            (1, TaskStatus::Submitted, "0%"),
            (2, TaskStatus::InProgress, "15%")
        ]
    );
    let snapshot: Task = serde_json::from_str(&listed[1].0.payload).unwrap();
    assert_eq!(
        (snapshot.mj_id.as_str(), snapshot.progress.as_str()),
        (task.mj_id.as_str(), "15%")
    );
    assert_eq!(listed[0].0.key_id, Some(key.key.id));

    let now = now_ms();
    let lease = now + 10_000;
    let claimed = store.claim_deliveries(now, lease, 10).await.unwrap();
    assert_eq!(claimed.iter().map(|d| d.seq).collect::<Vec<_>>(), vec![1]);
    assert!(
        store
            .claim_deliveries(now, lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    let attempt = |id: i64, status_code: Option<i64>| DeliveryAttempt {
        delivery_id: id,
        at: now,
        status_code,
        error: status_code
            .filter(|c| *c >= 300)
            .map(|c| format!("HTTP {c}")),
        duration_ms: 3,
    };
    store
        .record_attempt(
            &attempt(claimed[0].id, Some(500)),
            DeliveryNext::RetryAt(now + 1000),
            claimed[0].lease_until,
        )
        .await
        .unwrap();
    // Not due yet, and the next state waits for it.
    assert!(
        store
            .claim_deliveries(now, lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let again = store.claim_deliveries(now + 1000, lease, 10).await.unwrap();
    assert_eq!((again.len(), again[0].seq, again[0].attempts), (1, 1, 1));
    // A worker whose lease was taken over cannot move the delivery on.
    store
        .record_attempt(
            &attempt(again[0].id, Some(200)),
            DeliveryNext::Delivered,
            lease - 1,
        )
        .await
        .unwrap();
    let (first, _) = &store.task_deliveries(&again[0].mj_id).await.unwrap()[0];
    assert_eq!((first.state.as_str(), first.attempts), ("pending", 1));
    store
        .record_attempt(
            &attempt(again[0].id, Some(200)),
            DeliveryNext::Delivered,
            again[0].lease_until,
        )
        .await
        .unwrap();
    let second = store.claim_deliveries(now + 1000, lease, 10).await.unwrap();
    assert_eq!(second.iter().map(|d| d.seq).collect::<Vec<_>>(), vec![2]);
    // A released lease is free at once.
    store.release_deliveries(&[second[0].id]).await.unwrap();
    let second = store.claim_deliveries(now + 1000, lease, 10).await.unwrap();
    assert_eq!(second.len(), 1);
    store
        .record_attempt(
            &attempt(second[0].id, None),
            DeliveryNext::GiveUp,
            second[0].lease_until,
        )
        .await
        .unwrap();
    assert!(
        store
            .claim_deliveries(now + 1000, lease, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Failing queues the final state; a task failed before a channel took it queues nothing.
    store
        .fail_task(&task.mj_id, "gone", now_ms())
        .await
        .unwrap()
        .unwrap();
    let refused = store
        .insert_task(&hooked("1700000000000302"), 0)
        .await
        .unwrap();
    store
        .fail_task(&refused.mj_id, "refused", now_ms())
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .task_deliveries(&refused.mj_id)
            .await
            .unwrap()
            .is_empty()
    );

    let listed = store.task_deliveries(&task.mj_id).await.unwrap();
    let summary: Vec<(DeliveryState, Vec<Option<i64>>)> = listed
        .iter()
        .map(|(d, attempts)| (d.state, attempts.iter().map(|a| a.status_code).collect()))
        .collect();
    assert_eq!(
        summary,
        vec![
            // The stale worker's attempt is on record too.
            (
                DeliveryState::Delivered,
                vec![Some(500), Some(200), Some(200)]
            ),
            (DeliveryState::GivenUp, vec![None]),
            (DeliveryState::Pending, vec![]),
        ]
    );
    assert_eq!(listed[2].0.status, TaskStatus::Failure);
    assert_eq!(listed[0].0.last_error, None);
    assert_eq!(listed[0].1[0].error.as_deref(), Some("HTTP 500"));
}

both_backends!(
    accounts,
    channels,
    task_lifecycle,
    modal_starts_once,
    charges_and_refunds,
    history_pages,
    deliveries_in_order_under_lease,
);
