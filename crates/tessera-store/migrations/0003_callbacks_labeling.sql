-- Callback deliveries (a durable outbox), the labeling queue, workforce labelers and usage
-- records.
--
-- Invariants held by the schema:
--   * a delivery is written in the transaction that finalises its task (outbox), and a
--     pending delivery always has a due time; finished ones have none
--   * a task delivery names its task, a batch delivery its batch
--   * a task is claimed by at most one labeler, only while pending, always with a lease end
--   * one usage record per task (billing is idempotent per task)
--   * workforce labelers belong to no team and are not staff

-- Platform workforce labelers: label any team's live tasks, belong to no team.
ALTER TABLE users ADD COLUMN is_workforce BIGINT NOT NULL DEFAULT 0 CHECK (is_workforce IN (0, 1));

-- The labeler holding a live task and until when; both NULL when nobody does.
ALTER TABLE tasks ADD COLUMN claimed_by TEXT REFERENCES users (id);
ALTER TABLE tasks ADD COLUMN lease_until BIGINT;

-- @dialect postgres
ALTER TABLE users ADD CONSTRAINT users_workforce_teamless
    CHECK (is_workforce = 0 OR (team_id IS NULL AND is_staff = 0));
ALTER TABLE tasks ADD CONSTRAINT tasks_claim_consistent
    CHECK ((claimed_by IS NULL) = (lease_until IS NULL) AND (claimed_by IS NULL OR status = 'pending'));

-- @dialect sqlite
-- SQLite cannot add a table constraint to an existing table: triggers hold the same rules.
CREATE TRIGGER users_workforce_teamless_ins BEFORE INSERT ON users
WHEN NEW.is_workforce = 1 AND (NEW.team_id IS NOT NULL OR NEW.is_staff = 1)
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: users_workforce_teamless'); END;
CREATE TRIGGER users_workforce_teamless_upd BEFORE UPDATE ON users
WHEN NEW.is_workforce = 1 AND (NEW.team_id IS NOT NULL OR NEW.is_staff = 1)
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: users_workforce_teamless'); END;
CREATE TRIGGER tasks_claim_consistent_upd BEFORE UPDATE OF claimed_by, lease_until, status ON tasks
WHEN NOT ((NEW.claimed_by IS NULL) = (NEW.lease_until IS NULL) AND (NEW.claimed_by IS NULL OR NEW.status = 'pending'))
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: tasks_claim_consistent'); END;

-- @dialect all
-- The queue: the oldest pending live task, across teams (workforce) or in one team.
CREATE INDEX tasks_queue_idx ON tasks (created_at, id) WHERE mode = 'live' AND status = 'pending';
CREATE INDEX tasks_team_queue_idx ON tasks (team_id, created_at, id) WHERE mode = 'live' AND status = 'pending';

-- One message to one callback target, retried until it succeeds or the schedule runs out.
-- Its id is the Standard Webhooks `webhook-id`, stable across retries.
CREATE TABLE callback_deliveries (
    id TEXT PRIMARY KEY,
    team_id TEXT NOT NULL REFERENCES teams (id),
    mode TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    kind TEXT NOT NULL CHECK (kind IN ('task', 'batch', 'test')),
    task_id TEXT REFERENCES tasks (id),
    batch_id TEXT REFERENCES batches (id),
    -- An http(s) URL or an email address.
    target TEXT NOT NULL,
    -- The body for batch and test messages; task messages are built from the task when sent.
    payload TEXT,
    status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    -- Attempts in the current round (a redelivery starts a new round).
    attempts BIGINT NOT NULL DEFAULT 0,
    -- When a pending delivery is due; while a worker holds it, the end of that worker's lease.
    next_attempt_at BIGINT,
    last_status_code BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT,
    CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL)),
    CHECK ((status = 'pending') = (finished_at IS NULL)),
    CHECK (kind <> 'task' OR task_id IS NOT NULL),
    CHECK (kind <> 'batch' OR batch_id IS NOT NULL),
    CHECK (kind = 'task' OR payload IS NOT NULL)
);
CREATE INDEX callback_deliveries_due_idx ON callback_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX callback_deliveries_team_idx ON callback_deliveries (team_id, mode, created_at, id);
CREATE INDEX callback_deliveries_task_idx ON callback_deliveries (task_id);

-- Every attempt of a delivery, for the dashboard.
CREATE TABLE callback_attempts (
    id TEXT PRIMARY KEY,
    delivery_id TEXT NOT NULL REFERENCES callback_deliveries (id),
    at BIGINT NOT NULL,
    status_code BIGINT,
    latency_ms BIGINT NOT NULL,
    error TEXT,
    response_snippet TEXT
);
CREATE INDEX callback_attempts_delivery_idx ON callback_attempts (delivery_id, at);

-- A completed live task, for billing: written with the completion, once per task.
CREATE TABLE usage_records (
    id TEXT PRIMARY KEY,
    team_id TEXT NOT NULL REFERENCES teams (id),
    task_id TEXT NOT NULL REFERENCES tasks (id),
    project_id TEXT REFERENCES projects (id),
    task_type TEXT NOT NULL,
    labeled_by TEXT REFERENCES users (id),
    completed_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX usage_records_task_uq ON usage_records (task_id);
CREATE INDEX usage_records_team_idx ON usage_records (team_id, completed_at);
