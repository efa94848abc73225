-- Callbacks both ways: channels that send their updates to the gateway, and client
-- notifications kept as rows until a worker has delivered them (or given up).

-- Whether the gateway hands this channel its callback URL as each task's notifyHook.
ALTER TABLE channels ADD COLUMN callbacks INTEGER NOT NULL DEFAULT 0;

-- The secret a key's notifications are signed with (HMAC-SHA256). Unlike the key itself it
-- is kept in clear: signing needs it.
ALTER TABLE api_keys ADD COLUMN hook_secret TEXT NOT NULL DEFAULT '';
UPDATE api_keys SET hook_secret = lower(hex(randomblob(24)));

-- One row per state of a task to send to its notifyHook. `payload` is the task as it was;
-- `seq` orders a task's states, and one is sent only when those before it are done.
CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    mj_id           TEXT    NOT NULL REFERENCES tasks (mj_id),
    seq             INTEGER NOT NULL,
    url             TEXT    NOT NULL,
    key_id          INTEGER,
    status          TEXT    NOT NULL,
    progress        TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER
);
CREATE UNIQUE INDEX deliveries_task_seq ON deliveries (mj_id, seq);
CREATE INDEX deliveries_pending ON deliveries (next_attempt_at) WHERE state = 'pending';

CREATE TABLE delivery_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id INTEGER NOT NULL REFERENCES deliveries (id),
    at          INTEGER NOT NULL,
    status_code INTEGER,
    error       TEXT,
    duration_ms INTEGER NOT NULL
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, id);
