-- The per-team task count is spread over 16 rows (a random shard per insert) so concurrent
-- inserts do not queue on one row lock. Commit 057769c made that change by editing the released
-- 0002 in place; 0002 is back to its released text and this migration reshapes the table from
-- either starting point: the released one (no shard) or the edited one (already sharded).
-- Each (team, mode) keeps its total, summed into shard 0.
CREATE TABLE task_counts_next (
    team_id TEXT NOT NULL REFERENCES teams (id),
    mode TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    shard BIGINT NOT NULL CHECK (shard >= 0 AND shard < 16),
    total BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (team_id, mode, shard)
);
INSERT INTO task_counts_next (team_id, mode, shard, total)
    SELECT team_id, mode, 0, CAST(SUM(total) AS BIGINT) FROM task_counts GROUP BY team_id, mode;
DROP TABLE task_counts;
ALTER TABLE task_counts_next RENAME TO task_counts;
-- @dialect postgres
-- PostgreSQL names constraints after the table they were made with: give them the names a
-- table created as task_counts has.
ALTER TABLE task_counts RENAME CONSTRAINT task_counts_next_pkey TO task_counts_pkey;
ALTER TABLE task_counts RENAME CONSTRAINT task_counts_next_team_id_fkey TO task_counts_team_id_fkey;
ALTER TABLE task_counts RENAME CONSTRAINT task_counts_next_mode_check TO task_counts_mode_check;
ALTER TABLE task_counts RENAME CONSTRAINT task_counts_next_shard_check TO task_counts_shard_check;
