-- Exports read an app's entries in a time range in (created_at, id) order.
CREATE INDEX ledger_entries_app_time ON ledger_entries (app_id, created_at, id);
