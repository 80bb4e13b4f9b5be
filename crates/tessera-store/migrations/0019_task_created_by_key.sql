-- The API key that created a task, for the customer's task view (issue 13): which
-- integration sent it. NULL for tasks made before this column and for dashboard-made ones
-- (Get started's test task). Keys are only ever soft-deleted (deleted_at), so the reference
-- always resolves; the task page names a deleted key as such.
ALTER TABLE tasks ADD COLUMN created_by_key TEXT REFERENCES api_keys (id);
