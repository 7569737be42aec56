-- A user holds a bounded number of sessions: a login revokes the oldest beyond it, found
-- through this index.
CREATE INDEX sessions_user ON sessions (user_id, created_at);
