-- Fulfilment orders (the outbox of rewards paid outside the ledger) and red packets.
--
-- A fulfilment order is inserted by the ledger's batch commit, in the same transaction as the
-- grab or draw that won it; the outbox worker delivers pending orders to the webhook.

CREATE TABLE fulfilment_orders (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id           TEXT NOT NULL,
    user_id          BIGINT NOT NULL,
    idem_key         TEXT NOT NULL,
    source_kind      TEXT NOT NULL,
    reference        TEXT NOT NULL DEFAULT '',
    reward_type      TEXT NOT NULL,
    amount           BIGINT NOT NULL,
    detail           TEXT NOT NULL DEFAULT '{}',
    status           TEXT NOT NULL DEFAULT 'pending',
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    last_error       TEXT NOT NULL DEFAULT '',
    created_at       BIGINT NOT NULL,
    delivered_at     BIGINT,
    UNIQUE (idem_key, app_id)
);
CREATE INDEX fulfilment_orders_due ON fulfilment_orders (next_attempt_at) WHERE status = 'pending';
CREATE INDEX fulfilment_orders_app ON fulfilment_orders (app_id, id);

-- Activity actors rebuild their state from the entries they committed.
CREATE INDEX ledger_entries_activity ON ledger_entries (app_id, kind, reference);

-- 000 red-packet sessions ("batches"): a daily window holding cards.
CREATE TABLE redpack_sessions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id      TEXT NOT NULL REFERENCES apps(id),
    name        TEXT NOT NULL,
    start_time  TEXT NOT NULL,
    end_time    TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT '10',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- Cards: `sum` packets of `unit` a day, each costing `ticket` points, inside the card's window.
CREATE TABLE redpack_cards (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id       TEXT NOT NULL REFERENCES apps(id),
    batch_id     BIGINT NOT NULL REFERENCES redpack_sessions(id),
    reward_type  TEXT NOT NULL,
    sum          BIGINT NOT NULL CHECK (sum >= 0),
    unit         BIGINT NOT NULL CHECK (unit > 0),
    ticket       BIGINT NOT NULL CHECK (ticket >= 0),
    start_time   TEXT NOT NULL,
    end_time     TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT '10',
    clicks       BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX redpack_cards_batch ON redpack_cards (batch_id);

-- Pools: `count` packets summing to `total_points`, split once at creation.
CREATE TABLE redpack_pools (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id        TEXT NOT NULL REFERENCES apps(id),
    title         TEXT NOT NULL,
    total_points  BIGINT NOT NULL CHECK (total_points > 0),
    count         BIGINT NOT NULL CHECK (count > 0 AND count <= total_points),
    split         TEXT NOT NULL,
    starts_at     BIGINT,
    ends_at       BIGINT,
    status        TEXT NOT NULL DEFAULT '10',
    created_at    BIGINT NOT NULL
);

CREATE TABLE redpack_pool_packets (
    pool_id  BIGINT NOT NULL REFERENCES redpack_pools(id),
    seq      BIGINT NOT NULL,
    amount   BIGINT NOT NULL CHECK (amount > 0),
    PRIMARY KEY (pool_id, seq)
);
