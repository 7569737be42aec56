-- Walk (steps per user per business day), per-app walk and cover-image settings, and archived
-- leaderboards.
--
-- A day's steps keep the most a user reported that day and when that maximum was first
-- reported, which breaks ties on the daily steps board (the earlier ranks first).
CREATE TABLE walk_steps (
    user_id     BIGINT NOT NULL REFERENCES users(id),
    day         TEXT NOT NULL,
    app_id      TEXT NOT NULL,
    steps       BIGINT NOT NULL CHECK (steps >= 0),
    reached_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, day)
);
CREATE INDEX walk_steps_board ON walk_steps (app_id, day, steps);

-- `rate` steps buy one point; `auth_reward` points once for authorising WeRun (003 wx_run).
CREATE TABLE walk_settings (
    app_id       TEXT PRIMARY KEY REFERENCES apps(id),
    rate         BIGINT NOT NULL CHECK (rate > 0),
    auth_reward  BIGINT NOT NULL DEFAULT 0 CHECK (auth_reward >= 0),
    updated_at   BIGINT NOT NULL
);

-- 000 `v2/kingkong/cover_img.json`.
CREATE TABLE cover_images (
    app_id             TEXT PRIMARY KEY REFERENCES apps(id),
    lottery_cover_img  TEXT NOT NULL DEFAULT '',
    walk_cover_img     TEXT NOT NULL DEFAULT '',
    pickup_cover_img   TEXT NOT NULL DEFAULT '',
    updated_at         BIGINT NOT NULL
);

-- One row per archived board and period: inserting it first makes archiving idempotent.
CREATE TABLE leaderboard_periods (
    app_id       TEXT NOT NULL,
    board        TEXT NOT NULL,
    period       TEXT NOT NULL,
    entries      BIGINT NOT NULL,
    archived_at  BIGINT NOT NULL,
    PRIMARY KEY (app_id, board, period)
);

CREATE TABLE leaderboard_archive (
    app_id      TEXT NOT NULL,
    board       TEXT NOT NULL,
    period      TEXT NOT NULL,
    place       BIGINT NOT NULL,
    user_id     BIGINT NOT NULL,
    score       BIGINT NOT NULL,
    reached_at  BIGINT NOT NULL,
    PRIMARY KEY (app_id, board, period, place)
);
