-- Content of the 000 home page: banners (plain or linked to a task) and the icon grid (金刚区).
-- status "10" shown, "20" hidden, "30" deleted; lists order by sort, then id.
CREATE TABLE content_banners (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id       TEXT NOT NULL REFERENCES apps(id),
    image        TEXT NOT NULL,
    kind         TEXT NOT NULL,
    target_type  TEXT NOT NULL DEFAULT '',
    target       TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL DEFAULT '10',
    sort         BIGINT NOT NULL DEFAULT 0,
    task_id      BIGINT NOT NULL DEFAULT 0,
    remark       TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX content_banners_app ON content_banners (app_id, status, sort);

CREATE TABLE content_kingkong (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id       TEXT NOT NULL REFERENCES apps(id),
    icon         TEXT NOT NULL,
    name         TEXT NOT NULL,
    target_type  TEXT NOT NULL DEFAULT '',
    target       TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL DEFAULT '10',
    sort         BIGINT NOT NULL DEFAULT 0,
    remark       TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX content_kingkong_app ON content_kingkong (app_id, status, sort);

-- Per-app profile settings: the one-time reward for binding a phone number (003 wx_phone).
CREATE TABLE profile_settings (
    app_id        TEXT PRIMARY KEY REFERENCES apps(id),
    phone_reward  BIGINT NOT NULL DEFAULT 0
);
