-- Apps, users, sessions and the points ledger. Times are epoch milliseconds (UTC).
--
-- The ledger tables (ledger_entries, credit_lots) carry no foreign keys: only the ledger writer
-- inserts into them, always for users whose balance row (which does reference users) it has
-- just locked, and a foreign-key check would take a share lock on the user's row for every
-- entry, which costs the hot path more than it protects.

CREATE TABLE apps (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    settings    TEXT NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
INSERT INTO apps (id, name, settings, created_at, updated_at) VALUES ('default', 'Default app', '{}', 0, 0);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id        TEXT NOT NULL REFERENCES apps(id),
    platform_uid  TEXT NOT NULL,
    provider      TEXT NOT NULL,
    nick          TEXT NOT NULL DEFAULT '',
    avatar        TEXT NOT NULL DEFAULT '',
    gender        BIGINT NOT NULL DEFAULT 0,
    phone         TEXT,
    login_status  BIGINT NOT NULL DEFAULT 10,
    session_key   TEXT,
    unionid       TEXT,
    profile       TEXT NOT NULL DEFAULT '{}',
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (app_id, platform_uid)
);

CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users(id),
    app_id      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE balances (
    user_id     BIGINT PRIMARY KEY REFERENCES users(id),
    balance     BIGINT NOT NULL CHECK (balance >= 0),
    updated_at  BIGINT NOT NULL
);

CREATE TABLE ledger_entries (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id         TEXT NOT NULL,
    user_id        BIGINT NOT NULL,
    amount         BIGINT NOT NULL,
    kind           TEXT NOT NULL,
    idem_key       TEXT NOT NULL,
    reference      TEXT NOT NULL DEFAULT '',
    description    TEXT NOT NULL DEFAULT '',
    expires_at     BIGINT,
    balance_after  BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    UNIQUE (idem_key, app_id)
);
CREATE INDEX ledger_entries_user_time ON ledger_entries (user_id, created_at);

CREATE TABLE credit_lots (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     BIGINT NOT NULL,
    entry_id    BIGINT NOT NULL,
    amount      BIGINT NOT NULL,
    remaining   BIGINT NOT NULL CHECK (remaining >= 0),
    expires_at  BIGINT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX credit_lots_open ON credit_lots (user_id, expires_at) WHERE remaining > 0;
CREATE INDEX credit_lots_due ON credit_lots (expires_at) WHERE remaining > 0;

CREATE TABLE ledger_counters (
    counter_key  TEXT PRIMARY KEY,
    count        BIGINT NOT NULL CHECK (count >= 0),
    updated_at   BIGINT NOT NULL
);

CREATE TABLE earning_rules (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id       TEXT NOT NULL REFERENCES apps(id),
    event_type   TEXT NOT NULL,
    points       BIGINT NOT NULL,
    daily_cap    BIGINT NOT NULL DEFAULT 0,
    description  TEXT NOT NULL DEFAULT '',
    enabled      BIGINT NOT NULL DEFAULT 1,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (app_id, event_type)
);

CREATE TABLE job_runs (
    job         TEXT NOT NULL,
    period      TEXT NOT NULL,
    finished_at BIGINT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (job, period)
);
