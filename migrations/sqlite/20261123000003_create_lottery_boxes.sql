-- Lottery boards (one per app) and blind boxes.
--
-- Only configuration lives here. What was drawn, won and opened lives in the ledger: every draw
-- and every opening is a ledger entry, prize stock and external box stock are ledger counters
-- (`lottery:<app>:prize:<level>`, `box:<app>:<name>:alipay`), so the actors rebuild their state
-- from ledger_counters and ledger_entries.

-- One board per app: `ticket` points per draw, `daily_limit` draws per user per business day.
CREATE TABLE lottery_boards (
    app_id       TEXT PRIMARY KEY REFERENCES apps(id),
    ticket       BIGINT NOT NULL CHECK (ticket >= 0),
    daily_limit  BIGINT NOT NULL CHECK (daily_limit > 0),
    status       TEXT NOT NULL DEFAULT '10',
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

-- Prizes: `stock` units over the board's life; `rate_ppm` the chance in millionths (a board's
-- rates add up to exactly 1000000).
CREATE TABLE lottery_prizes (
    app_id       TEXT NOT NULL REFERENCES lottery_boards(app_id),
    level        BIGINT NOT NULL,
    name         TEXT NOT NULL,
    reward_type  TEXT NOT NULL,
    icon         TEXT NOT NULL DEFAULT '',
    stock        BIGINT NOT NULL CHECK (stock >= 0),
    amount       BIGINT NOT NULL CHECK (amount >= 0),
    rate_ppm     BIGINT NOT NULL CHECK (rate_ppm >= 0 AND rate_ppm <= 1000000),
    sort         BIGINT NOT NULL,
    PRIMARY KEY (app_id, level)
);

-- Blind boxes: open once `task_sum` tasks are finished today; pay `alipay_point_unit` 集分宝
-- for the first `alipay_point_valve` openings, `points_unit` points after.
CREATE TABLE blind_boxes (
    app_id              TEXT NOT NULL REFERENCES apps(id),
    name                TEXT NOT NULL,
    task_sum            BIGINT NOT NULL CHECK (task_sum >= 0),
    alipay_point_valve  BIGINT NOT NULL CHECK (alipay_point_valve >= 0),
    alipay_point_unit   BIGINT NOT NULL CHECK (alipay_point_unit >= 0),
    points_unit         BIGINT NOT NULL CHECK (points_unit >= 0),
    sort                BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    PRIMARY KEY (app_id, name)
);
