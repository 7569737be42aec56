-- Morning check-in rounds (早起打卡): per-app config, rounds and their settled results.
--
-- The ledger holds the truth of every round: sign-ups (`pick_sign`, the ticket), check-ins
-- (`pick_check`, zero amount) and payouts (`pick_pay`), all with reference `pick:<period>`.
-- These tables hold what the ledger cannot: the app's rules, which rounds exist and are settled,
-- and the settlement plan, written before any payout so that a repeated or late settlement pays
-- exactly the same amounts (random payouts included).

CREATE TABLE morning_configs (
    app_id         TEXT PRIMARY KEY REFERENCES apps(id),
    ticket         BIGINT NOT NULL CHECK (ticket >= 0),
    coefficient    DOUBLE PRECISION NOT NULL CHECK (coefficient >= 0),
    start_time     TEXT NOT NULL,
    end_time       TEXT NOT NULL,
    mode           TEXT NOT NULL CHECK (mode IN ('random', 'split')),
    min_points     BIGINT NOT NULL CHECK (min_points >= 0),
    max_points     BIGINT NOT NULL CHECK (max_points >= min_points),
    inflation_min  BIGINT NOT NULL CHECK (inflation_min >= 1),
    inflation_max  BIGINT NOT NULL CHECK (inflation_max >= inflation_min),
    updated_at     BIGINT NOT NULL
);

-- One row per round that has been opened (its actor started); `planned_at` once the payouts are
-- decided, `settled_at` once they are all committed.
CREATE TABLE morning_rounds (
    app_id      TEXT NOT NULL,
    period      TEXT NOT NULL,
    mode        TEXT NOT NULL DEFAULT '',
    signups     BIGINT NOT NULL DEFAULT 0,
    checkins    BIGINT NOT NULL DEFAULT 0,
    stakes      BIGINT NOT NULL DEFAULT 0,
    payouts     BIGINT NOT NULL DEFAULT 0,
    planned_at  BIGINT,
    settled_at  BIGINT,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (app_id, period)
);
CREATE INDEX morning_rounds_unsettled ON morning_rounds (period) WHERE settled_at IS NULL;

-- The settlement plan and outcome per signed-up user of a round.
CREATE TABLE morning_results (
    app_id      TEXT NOT NULL,
    period      TEXT NOT NULL,
    user_id     BIGINT NOT NULL,
    stake       BIGINT NOT NULL,
    checked_in  BIGINT NOT NULL,
    checked_at  BIGINT,
    streak      BIGINT NOT NULL DEFAULT 0,
    inflation   BIGINT NOT NULL DEFAULT 1,
    payout      BIGINT NOT NULL CHECK (payout >= 0),
    seen_at     BIGINT,
    PRIMARY KEY (app_id, period, user_id)
);
CREATE INDEX morning_results_user ON morning_results (app_id, user_id, period);
