-- Daily sign-in: one row per user and business day, and the per-app sign-in settings.
--
-- The ledger entry under `sign:<app>:<day>:<user>` is what guards the reward; a row here is
-- written after that entry commits and carries the streak reached that day, so tomorrow's
-- streak is one lookup (yesterday's row) instead of a walk over the user's history.
CREATE TABLE signins (
    app_id      TEXT NOT NULL,
    user_id     BIGINT NOT NULL REFERENCES users(id),
    day         TEXT NOT NULL,
    streak      BIGINT NOT NULL CHECK (streak >= 1),
    points      BIGINT NOT NULL CHECK (points >= 0),
    bonus       BIGINT NOT NULL CHECK (bonus >= 0),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (app_id, user_id, day)
);

-- `milestones` is a JSON object {"<streak day>": <bonus points>}; `milestones_repeat` 1 makes
-- the milestones come round again after the largest one (day 37 pays the "7" bonus again).
CREATE TABLE signin_settings (
    app_id             TEXT PRIMARY KEY REFERENCES apps(id),
    daily_points       BIGINT NOT NULL CHECK (daily_points >= 0),
    milestones         TEXT NOT NULL,
    milestones_repeat  BIGINT NOT NULL DEFAULT 1,
    focus_reward       BIGINT NOT NULL CHECK (focus_reward >= 0),
    collect_reward     BIGINT NOT NULL CHECK (collect_reward >= 0),
    updated_at         BIGINT NOT NULL
);
