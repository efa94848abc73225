-- Work shared by several gateway processes: named leases (one holder at a time, taken over
-- when they run out), and per-key request counters for rate limits.
CREATE TABLE leases (
    name     TEXT    PRIMARY KEY,
    holder   TEXT    NOT NULL,
    until_ms BIGINT  NOT NULL
);

CREATE TABLE rate_counters (
    key_id       BIGINT  NOT NULL,
    window_start BIGINT  NOT NULL,
    count        BIGINT  NOT NULL,
    PRIMARY KEY (key_id, window_start)
);
