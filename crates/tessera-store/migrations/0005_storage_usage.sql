-- 0005: each team's stored file bytes and count (live and test together), so that the storage
-- quota is reserved with one conditional UPDATE that holds under concurrency and across
-- replicas. A row appears with the team's first file; it always equals the sums over `files`
-- (the file row and the usage change commit in one transaction).

CREATE TABLE team_storage (
    team_id TEXT PRIMARY KEY REFERENCES teams (id),
    bytes BIGINT NOT NULL DEFAULT 0 CHECK (bytes >= 0),
    files BIGINT NOT NULL DEFAULT 0 CHECK (files >= 0),
    updated_at BIGINT NOT NULL
);

INSERT INTO team_storage (team_id, bytes, files, updated_at)
SELECT team_id, CAST(SUM(size) AS BIGINT), COUNT(*), 0 FROM files GROUP BY team_id;
