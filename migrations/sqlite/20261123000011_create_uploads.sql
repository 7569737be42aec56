-- Uploaded images and the review (audit) of a user's submitted files.
--
-- An upload row names a file stored under `POINTS_UPLOAD_DIR` with a random name; only its
-- owner may submit it for review.
CREATE TABLE uploads (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id      TEXT NOT NULL,
    user_id     BIGINT NOT NULL REFERENCES users(id),
    file_name   TEXT NOT NULL UNIQUE,
    mime        TEXT NOT NULL,
    size_bytes  BIGINT NOT NULL CHECK (size_bytes > 0),
    created_at  BIGINT NOT NULL
);
CREATE INDEX uploads_user ON uploads (user_id);

-- One row per submission; `files` is the JSON list of upload ids. `status`: `audit` (in
-- review), `success` (approved), `failed` (rejected). The partial unique index is what refuses a
-- second submission while one is in review or approved, however many requests race.
CREATE TABLE audits (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id      TEXT NOT NULL,
    user_id     BIGINT NOT NULL REFERENCES users(id),
    files       TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('audit', 'success', 'failed')),
    points      BIGINT NOT NULL DEFAULT 0 CHECK (points >= 0),
    created_at  BIGINT NOT NULL,
    decided_at  BIGINT
);
CREATE UNIQUE INDEX audits_open ON audits (app_id, user_id) WHERE status IN ('audit', 'success');
CREATE INDEX audits_app_status ON audits (app_id, status, id);
CREATE INDEX audits_user ON audits (user_id, id);
