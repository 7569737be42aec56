-- A year of a busy mini-program, written by SQL for speed: :users users of the default app (each
-- with a session and a balance), :entries ledger entries spread evenly over them, a credit lot
-- per entry (one in five still open), and one counter per user. Run against a migrated
-- database, before the load:
--   psql "$DATABASE_URL" -v users=1000000 -v entries=10000000 -f loadtest/sql/seed-scale.sql
-- Seeded users are `seed-<n>`; seeded keys start with `seed:`, so nothing collides with the
-- load generator's users (`dev_lt_*`, `lt_*`) or keys.
\set ON_ERROR_STOP on
\timing on

INSERT INTO users (app_id, platform_uid, provider, nick, created_at, updated_at)
SELECT 'default', 'seed-' || g, 'dev', 'seed ' || g, 0, 0 FROM generate_series(1, :users) g;

INSERT INTO sessions (token_hash, user_id, app_id, expires_at, created_at)
SELECT 'seed-' || id, id, 'default', 4102444800000, 0 FROM users WHERE platform_uid LIKE 'seed-%';

INSERT INTO balances (user_id, balance, updated_at)
SELECT id, 0, 0 FROM users WHERE platform_uid LIKE 'seed-%';

-- Entries of user n are n, n + users, n + 2 users, ...: each user gets entries / users of them.
CREATE TEMP TABLE seed_users AS
SELECT row_number() OVER (ORDER BY id) - 1 AS n, id FROM users WHERE platform_uid LIKE 'seed-%';
CREATE INDEX ON seed_users (n);

INSERT INTO ledger_entries (app_id, user_id, amount, kind, idem_key, reference, description,
                            expires_at, balance_after, created_at)
SELECT 'default', s.id, 10, 'grant', 'seed:' || g, 'seed', 'seeded grant', 4102444800000,
       10 * (1 + g / :users), 1700000000000 + g
FROM generate_series(0, :entries - 1) g JOIN seed_users s ON s.n = g % :users;

INSERT INTO credit_lots (user_id, entry_id, amount, remaining, expires_at, created_at)
SELECT user_id, id, 10, CASE WHEN id % 5 = 0 THEN 10 ELSE 0 END, expires_at, created_at
FROM ledger_entries WHERE idem_key LIKE 'seed:%';

-- Balances agree with the open lots, as the ledger keeps them.
UPDATE balances b SET balance = l.open
FROM (SELECT user_id, SUM(remaining) AS open FROM credit_lots GROUP BY user_id) l
WHERE b.user_id = l.user_id;

INSERT INTO ledger_counters (counter_key, count, updated_at)
SELECT 'seed:' || id, 1, 0 FROM seed_users;

ANALYZE;
