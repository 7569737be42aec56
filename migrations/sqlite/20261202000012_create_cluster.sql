-- Several nodes over one database: who runs, and who owns each activity (Postgres only: a
-- SQLite file serves one process; the tables exist so both schemas are the same).
--
-- A node's row is its heartbeat (`last_seen_ms`, the database's clock). An activity's lease row
-- names its owner and an epoch that grows at every takeover; every ledger batch that carries an
-- activity's changes reads its row `FOR SHARE` and refuses those changes when the epoch is not
-- the one their owner was given, so an owner that lost the lease can never commit again.
-- Times are milliseconds of the database's clock; no node's clock decides a lease.
CREATE TABLE cluster_nodes (
    node_id       TEXT PRIMARY KEY,
    addr          TEXT NOT NULL,
    started_ms    BIGINT NOT NULL,
    last_seen_ms  BIGINT NOT NULL
);

CREATE TABLE activity_leases (
    activity      TEXT PRIMARY KEY,
    owner_node    TEXT NOT NULL,
    owner_addr    TEXT NOT NULL,
    epoch         BIGINT NOT NULL CHECK (epoch > 0),
    lease_until   BIGINT NOT NULL
);
CREATE INDEX activity_leases_owner ON activity_leases (owner_node);
