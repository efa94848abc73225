-- Copies of task images (and videos) in the gateway's own storage. A row is first the job
-- that copies the file from the upstream (claimed by a worker under a lease, retried with
-- backoff), then the record of where the copy lives.
CREATE TABLE task_files (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    mj_id           TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    source_url      TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    storage_key     TEXT,
    content_type    TEXT,
    size            INTEGER,
    etag            TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (mj_id, kind)
);
CREATE INDEX task_files_due ON task_files (next_attempt_at) WHERE state = 'pending';
