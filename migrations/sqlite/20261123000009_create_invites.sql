-- Invites: each user's share code and the per-app invite reward settings.
--
-- Who invited whom is not stored here: the inviter's ledger entry of kind `invite` under the key
-- `invite:<app>:<invitee user id>` (its `reference` is the invitee's user id) is the link and the
-- reward at once, so an invitee is linked and rewarded once, in one commit.
CREATE TABLE share_codes (
    app_id      TEXT NOT NULL REFERENCES apps(id),
    user_id     BIGINT NOT NULL REFERENCES users(id),
    code        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (app_id, user_id),
    UNIQUE (app_id, code)
);

-- The inviter earns `points * times` per new invitee.
CREATE TABLE invite_settings (
    app_id      TEXT PRIMARY KEY REFERENCES apps(id),
    points      BIGINT NOT NULL CHECK (points >= 0),
    times       BIGINT NOT NULL CHECK (times >= 1),
    updated_at  BIGINT NOT NULL
);
