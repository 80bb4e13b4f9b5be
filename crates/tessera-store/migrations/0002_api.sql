-- API keys, per-team secrets, and the Scale-compatible v1 objects: projects, batches, tasks
-- and files. Everything a key creates is partitioned by (team_id, mode): live and test are
-- separate worlds, and every unique name is unique only within its world.

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    team_id TEXT NOT NULL REFERENCES teams (id),
    mode TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    label TEXT NOT NULL DEFAULT '',
    -- The first characters of the key, to recognise it in lists ("test_Ab12…").
    prefix TEXT NOT NULL,
    -- SHA-256 (hex) of the key: the lookup index. The key itself is only in `sealed`
    -- (AES-256-GCM under the master key), so Managers can reveal it again.
    digest TEXT NOT NULL,
    sealed TEXT NOT NULL,
    created_by TEXT REFERENCES users (id),
    created_by_label TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    deleted_at BIGINT
);
CREATE UNIQUE INDEX api_keys_digest_uq ON api_keys (digest);
CREATE INDEX api_keys_team_idx ON api_keys (team_id, mode, created_at);

-- Secrets a team holds per mode: `callback_auth` (sent as scale-callback-auth) and, later,
-- `callback_signing`. Rotation keeps the previous value until `previous_until`.
CREATE TABLE team_secrets (
    team_id TEXT NOT NULL REFERENCES teams (id),
    kind TEXT NOT NULL CHECK (kind IN ('callback_auth', 'callback_signing')),
    mode TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    sealed TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    previous_sealed TEXT,
    previous_until BIGINT,
    PRIMARY KEY (team_id, kind, mode)
);

CREATE TABLE projects (
    id TEXT PRIMARY KEY,
    team_id TEXT NOT NULL REFERENCES teams (id),
    mode TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    params TEXT NOT NULL DEFAULT '{}',
    param_history TEXT NOT NULL DEFAULT '[]',
    rapid BIGINT NOT NULL DEFAULT 0 CHECK (rapid IN (0, 1)),
    studio BIGINT NOT NULL DEFAULT 0 CHECK (studio IN (0, 1)),
    dataset_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX projects_name_uq ON projects (team_id, mode, name);
CREATE INDEX projects_created_idx ON projects (team_id, mode, created_at);

CREATE TABLE batches (
    id TEXT PRIMARY KEY,
    team_id TEXT NOT NULL REFERENCES teams (id),
    mode TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    project_id TEXT NOT NULL REFERENCES projects (id),
    name TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('staging', 'in_progress', 'completed')),
    callback TEXT NOT NULL DEFAULT '',
    metadata TEXT NOT NULL DEFAULT '{}',
    calibration_batch BIGINT NOT NULL DEFAULT 0 CHECK (calibration_batch IN (0, 1)),
    self_label_batch BIGINT NOT NULL DEFAULT 0 CHECK (self_label_batch IN (0, 1)),
    finalized BIGINT NOT NULL DEFAULT 0 CHECK (finalized IN (0, 1)),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    completed_at BIGINT
);
CREATE UNIQUE INDEX batches_name_uq ON batches (team_id, mode, name);
CREATE INDEX batches_created_idx ON batches (team_id, mode, created_at);

CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    team_id TEXT NOT NULL REFERENCES teams (id),
    mode TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    type TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'completed', 'canceled', 'error')),
    project_id TEXT REFERENCES projects (id),
    batch_id TEXT REFERENCES batches (id),
    unique_id TEXT,
    callback_url TEXT,
    instruction TEXT,
    params TEXT NOT NULL DEFAULT '{}',
    metadata TEXT NOT NULL DEFAULT '{}',
    -- JSON array, or NULL when the task never had tags (the key is then absent on the wire).
    tags TEXT,
    response TEXT,
    -- Other top-level fields the caller sent (urgency, priority, …), passed through.
    extra TEXT NOT NULL DEFAULT '{}',
    callback_succeeded BIGINT CHECK (callback_succeeded IN (0, 1)),
    customer_review_status TEXT CHECK (customer_review_status IN ('pending', 'fixed', 'accepted', 'rejected', 'commented')),
    audits TEXT NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    completed_at BIGINT,
    CHECK (status <> 'completed' OR (completed_at IS NOT NULL AND response IS NOT NULL))
);
CREATE UNIQUE INDEX tasks_unique_id_uq ON tasks (team_id, mode, unique_id) WHERE unique_id IS NOT NULL;
-- Newest-first keyset pagination, and the common filters.
CREATE INDEX tasks_list_idx ON tasks (team_id, mode, created_at, id);
CREATE INDEX tasks_status_idx ON tasks (team_id, mode, status, created_at, id);
CREATE INDEX tasks_project_idx ON tasks (project_id, created_at, id);
CREATE INDEX tasks_batch_idx ON tasks (batch_id, status);

-- One row per (task, tag), so the tags filter is an indexed lookup on both databases.
CREATE TABLE task_tags (
    task_id TEXT NOT NULL REFERENCES tasks (id),
    team_id TEXT NOT NULL,
    mode TEXT NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (task_id, tag)
);
CREATE INDEX task_tags_tag_idx ON task_tags (team_id, mode, tag);

-- The number of tasks per (team, mode), kept in the transaction that inserts a task, so an
-- unfiltered list can report its total without counting a million rows.
CREATE TABLE task_counts (
    team_id TEXT NOT NULL REFERENCES teams (id),
    mode TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    total BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (team_id, mode)
);

-- What happened to a task, for the dashboard's history.
CREATE TABLE task_events (
    id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL REFERENCES tasks (id),
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    event TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX task_events_task_idx ON task_events (task_id, at);

CREATE TABLE files (
    id TEXT PRIMARY KEY,
    team_id TEXT NOT NULL REFERENCES teams (id),
    mode TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    filename TEXT NOT NULL,
    mime_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    storage_key TEXT NOT NULL,
    project_names TEXT NOT NULL DEFAULT '[]',
    source_url TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX files_team_idx ON files (team_id, mode, created_at);
