-- Tasks: 000 gift tasks (finished up to `repeat_per_day` times a day) and 001 center tasks
-- (permanent or cyclic, progress set by the operator's server, reward claimed once per cycle).
--
-- Only configuration, click statistics and progress live here. Finishes and claims are ledger
-- entries of kind `task`: a 000 finish is keyed `task:<app>:<id>:<day>:<user>:<n>` and counted by
-- the counter `task:<app>:<id>:<user>:<day>`; a 001 claim is keyed
-- `ctask:<app>:<task>:<cycle-start>:<user>`. So the database, not the handler, refuses a reward
-- given twice.

-- 000 tasks. `btn_desc` is a JSON array of button texts; `status` "10" on shelf, "20" off
-- shelf, "30" deleted.
CREATE TABLE gift_tasks (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id          TEXT NOT NULL REFERENCES apps(id),
    icon            TEXT NOT NULL DEFAULT '',
    name            TEXT NOT NULL,
    flag            TEXT NOT NULL DEFAULT '',
    remark          TEXT NOT NULL DEFAULT '',
    reward_desc     TEXT NOT NULL DEFAULT '',
    reward_type     TEXT NOT NULL,
    amount          BIGINT NOT NULL CHECK (amount >= 0),
    btn_desc        TEXT NOT NULL DEFAULT '[]',
    target_type     TEXT NOT NULL DEFAULT '',
    target          TEXT NOT NULL DEFAULT '',
    repeat_per_day  BIGINT NOT NULL CHECK (repeat_per_day > 0),
    sort            BIGINT NOT NULL DEFAULT 0,
    status          TEXT NOT NULL DEFAULT '10',
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX gift_tasks_app ON gift_tasks (app_id, sort);

-- Clicks on a 000 task's button, per user and business day (statistics only).
CREATE TABLE gift_task_clicks (
    task_id     BIGINT NOT NULL,
    user_id     BIGINT NOT NULL,
    day         TEXT NOT NULL,
    clicks      BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (task_id, user_id, day)
);

-- 001 tasks. `kind` "permanent" or "cyclic"; a cyclic task's period is `cycle_days` units of
-- `cycle_type` ("day", "week", "month").
CREATE TABLE center_tasks (
    app_id       TEXT NOT NULL REFERENCES apps(id),
    task_id      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    cycle_type   TEXT NOT NULL DEFAULT '',
    cycle_days   BIGINT NOT NULL DEFAULT 0,
    title        TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    btn_title    TEXT NOT NULL DEFAULT '',
    btn_type     TEXT NOT NULL DEFAULT '',
    path         TEXT NOT NULL DEFAULT '',
    img_url      TEXT NOT NULL DEFAULT '',
    icon         TEXT NOT NULL DEFAULT '',
    face_value   BIGINT NOT NULL CHECK (face_value > 0),
    total        BIGINT NOT NULL CHECK (total > 0),
    sort         BIGINT NOT NULL DEFAULT 0,
    status       TEXT NOT NULL DEFAULT '10',
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (app_id, task_id)
);

-- A user's progress on a 001 task in one cycle (`cycle_start` the cycle's first business day,
-- "permanent" for growth tasks). `status` 1 to claim, 2 unfinished, 3 done.
CREATE TABLE center_task_progress (
    app_id        TEXT NOT NULL,
    task_id       TEXT NOT NULL,
    user_id       BIGINT NOT NULL,
    cycle_start   TEXT NOT NULL,
    complete_num  BIGINT NOT NULL CHECK (complete_num >= 0),
    status        BIGINT NOT NULL CHECK (status IN (1, 2, 3)),
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (app_id, task_id, user_id, cycle_start)
);
