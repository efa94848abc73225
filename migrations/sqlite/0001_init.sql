-- The gateway's own records. Times are Unix milliseconds; money is integer quota units.

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    name              TEXT    NOT NULL UNIQUE,
    role              TEXT    NOT NULL DEFAULT 'user',
    balance           INTEGER NOT NULL DEFAULT 0 CHECK (balance >= 0),
    access_token_hash TEXT    UNIQUE,
    enabled           INTEGER NOT NULL DEFAULT 1,
    created_at        INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL REFERENCES users (id),
    key_hash    TEXT    NOT NULL UNIQUE,
    key_hint    TEXT    NOT NULL,
    enabled     INTEGER NOT NULL DEFAULT 1,
    expires_at  INTEGER,
    quota_limit INTEGER,
    quota_used  INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);
CREATE INDEX api_keys_user ON api_keys (user_id);

CREATE TABLE channels (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    name                TEXT    NOT NULL UNIQUE,
    base_url            TEXT    NOT NULL,
    secret              TEXT    NOT NULL DEFAULT '',
    enabled             INTEGER NOT NULL DEFAULT 1,
    priority            INTEGER NOT NULL DEFAULT 0,
    weight              INTEGER NOT NULL DEFAULT 1,
    modes               TEXT    NOT NULL DEFAULT 'FAST,RELAX,TURBO',
    bot_types           TEXT    NOT NULL DEFAULT 'MID_JOURNEY,NIJI_JOURNEY',
    max_in_flight       INTEGER,
    pass_account_filter INTEGER NOT NULL DEFAULT 0,
    is_local            INTEGER NOT NULL DEFAULT 0,
    created_at          INTEGER NOT NULL
);

CREATE TABLE tasks (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    mj_id              TEXT    NOT NULL UNIQUE,
    user_id            INTEGER NOT NULL REFERENCES users (id),
    key_id             INTEGER REFERENCES api_keys (id),
    channel_id         INTEGER REFERENCES channels (id),
    upstream_id        TEXT,
    parent_id          TEXT,
    action             TEXT    NOT NULL,
    status             TEXT    NOT NULL,
    progress           TEXT    NOT NULL DEFAULT '0%',
    prompt             TEXT    NOT NULL DEFAULT '',
    prompt_en          TEXT    NOT NULL DEFAULT '',
    description        TEXT    NOT NULL DEFAULT '',
    state              TEXT,
    bot_type           TEXT    NOT NULL,
    mode               TEXT,
    custom_id          TEXT,
    notify_hook        TEXT,
    submit_time        INTEGER NOT NULL,
    start_time         INTEGER NOT NULL DEFAULT 0,
    finish_time        INTEGER NOT NULL DEFAULT 0,
    upstream_image_url TEXT,
    video_url          TEXT,
    video_urls         TEXT    NOT NULL DEFAULT '[]',
    fail_reason        TEXT,
    buttons            TEXT    NOT NULL DEFAULT '[]',
    properties         TEXT    NOT NULL DEFAULT '{}',
    quota              INTEGER NOT NULL DEFAULT 0,
    missing_polls      INTEGER NOT NULL DEFAULT 0,
    updated_at         INTEGER NOT NULL
);
-- One upstream task is one of ours: two rows never share an upstream id on a channel.
CREATE UNIQUE INDEX tasks_upstream ON tasks (channel_id, upstream_id);
CREATE INDEX tasks_user ON tasks (user_id, id);
CREATE INDEX tasks_unfinished ON tasks (channel_id, id)
    WHERE status NOT IN ('SUCCESS', 'FAILURE', 'CANCEL');

CREATE TABLE ledger (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    key_id     INTEGER,
    task_id    TEXT,
    kind       TEXT    NOT NULL,
    amount     INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
-- A task is charged at most once and refunded at most once, whatever races.
CREATE UNIQUE INDEX ledger_once_per_task ON ledger (task_id, kind) WHERE task_id IS NOT NULL;
CREATE INDEX ledger_user ON ledger (user_id);

-- Prices per action and speed mode ('' = any mode); actions without a row use the defaults
-- compiled into the gateway.
CREATE TABLE prices (
    action TEXT    NOT NULL,
    mode   TEXT    NOT NULL DEFAULT '',
    price  INTEGER NOT NULL CHECK (price >= 0),
    PRIMARY KEY (action, mode)
);
CREATE INDEX tasks_channel ON tasks (channel_id, id);
CREATE INDEX tasks_submit ON tasks (submit_time);
