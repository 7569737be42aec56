-- The prize shop: its catalog and each app's points rule text.
--
-- Only configuration lives here. What was exchanged lives in the ledger: every exchange is one
-- ledger change of kind `exchange` with reference `shop:<prize id>`; a prize's stock and each
-- user's per-period allowance are ledger counters (`shop:<app>:prize:<id>` and
-- `shop:<app>:prize:<id>:user:<user>:<period>`); goods and virtual goods become fulfilment orders
-- in the same commit.

-- `face_value` points per exchange; `total` units over the prize's life (exchanged units count
-- against it); `prize_type` goods / virtualGoods / integral; `exchange_limit` day / week / month /
-- once with `limit_count` exchanges per user per period; `points` credited by an integral prize;
-- `status` 10 on shelf, 20 off shelf, 30 deleted.
CREATE TABLE shop_prizes (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id          TEXT NOT NULL REFERENCES apps(id),
    prize_key       TEXT NOT NULL,
    title           TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    icon            TEXT NOT NULL DEFAULT '',
    face_value      BIGINT NOT NULL CHECK (face_value >= 0),
    total           BIGINT NOT NULL CHECK (total >= 0),
    prize_type      TEXT NOT NULL,
    exchange_limit  TEXT NOT NULL,
    limit_count     BIGINT NOT NULL CHECK (limit_count > 0),
    points          BIGINT NOT NULL DEFAULT 0 CHECK (points >= 0),
    sort            BIGINT NOT NULL DEFAULT 0,
    status          TEXT NOT NULL DEFAULT '10',
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (app_id, prize_key)
);
CREATE INDEX shop_prizes_app ON shop_prizes (app_id, status, sort, id);

-- The points rule text shown by 001 `getPointsRule`, one per app.
CREATE TABLE shop_rules (
    app_id       TEXT PRIMARY KEY REFERENCES apps(id),
    rule_detail  TEXT NOT NULL,
    updated_at   BIGINT NOT NULL
);
