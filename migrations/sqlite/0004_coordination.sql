-- Work shared by several gateway processes: named leases (one holder at a time, taken over
-- when they run out), and per-key request counters for rate limits.
CREATE TABLE leases (
    name     TEXT    PRIMARY KEY,
    holder   TEXT    NOT NULL,
    until_ms INTEGER NOT NULL
);

CREATE TABLE rate_counters (
    key_id       INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    PRIMARY KEY (key_id, window_start)
);
