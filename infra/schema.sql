-- Palimpsest's own tables beside the event store's. Every statement is idempotent.

-- Integer ids CVAT clients expect; taken when a command runs and written into its events.
CREATE SEQUENCE IF NOT EXISTS palimpsest_user_id;
CREATE SEQUENCE IF NOT EXISTS palimpsest_project_id;
CREATE SEQUENCE IF NOT EXISTS palimpsest_task_id;
CREATE SEQUENCE IF NOT EXISTS palimpsest_job_id;
CREATE SEQUENCE IF NOT EXISTS palimpsest_label_id;
CREATE SEQUENCE IF NOT EXISTS palimpsest_attribute_id;
CREATE SEQUENCE IF NOT EXISTS palimpsest_storage_id;
CREATE SEQUENCE IF NOT EXISTS palimpsest_data_id;
CREATE SEQUENCE IF NOT EXISTS palimpsest_annotation_id;
CREATE SEQUENCE IF NOT EXISTS palimpsest_access_token_id;
CREATE SEQUENCE IF NOT EXISTS palimpsest_issue_id;
CREATE SEQUENCE IF NOT EXISTS palimpsest_comment_id;

-- How far each projection has read the notification log.
CREATE TABLE IF NOT EXISTS projection_tracking (
    name text PRIMARY KEY,
    position bigint NOT NULL DEFAULT 0
);

-- The catalog projection: CVAT read documents (without request-dependent urls).
CREATE TABLE IF NOT EXISTS catalog_users (
    id integer PRIMARY KEY,
    uuid uuid UNIQUE NOT NULL,
    username text NOT NULL,
    email text NOT NULL,
    password_hash text NOT NULL,
    is_superuser boolean NOT NULL,
    doc jsonb NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS catalog_users_username ON catalog_users (lower(username));
CREATE INDEX IF NOT EXISTS catalog_users_email ON catalog_users (lower(email));

CREATE TABLE IF NOT EXISTS catalog_projects (
    id integer PRIMARY KEY,
    uuid uuid UNIQUE NOT NULL,
    owner_id integer,
    doc jsonb NOT NULL
);

CREATE TABLE IF NOT EXISTS catalog_tasks (
    id integer PRIMARY KEY,
    uuid uuid UNIQUE NOT NULL,
    project_id integer,
    owner_id integer,
    doc jsonb NOT NULL,
    data jsonb
);
CREATE INDEX IF NOT EXISTS catalog_tasks_project ON catalog_tasks (project_id);

CREATE TABLE IF NOT EXISTS catalog_jobs (
    id integer PRIMARY KEY,
    uuid uuid UNIQUE NOT NULL,
    task_id integer NOT NULL,
    doc jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS catalog_jobs_task ON catalog_jobs (task_id);

CREATE TABLE IF NOT EXISTS catalog_issues (
    id integer PRIMARY KEY,
    job_id integer NOT NULL,
    task_id integer NOT NULL,
    doc jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS catalog_issues_job ON catalog_issues (job_id);

CREATE TABLE IF NOT EXISTS catalog_comments (
    id integer PRIMARY KEY,
    issue_id integer NOT NULL,
    job_id integer NOT NULL,
    doc jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS catalog_comments_issue ON catalog_comments (issue_id);

CREATE TABLE IF NOT EXISTS catalog_labels (
    id integer PRIMARY KEY,
    project_id integer,
    task_id integer,
    position integer NOT NULL,
    doc jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS catalog_labels_project ON catalog_labels (project_id);
CREATE INDEX IF NOT EXISTS catalog_labels_task ON catalog_labels (task_id);

-- Signed-in sessions and API tokens (key = the login token; csrf never rotates).
CREATE TABLE IF NOT EXISTS auth_sessions (
    key text PRIMARY KEY,
    session_id text UNIQUE NOT NULL,
    csrf_token text NOT NULL,
    user_id integer NOT NULL,
    created timestamptz NOT NULL DEFAULT now(),
    expires timestamptz NOT NULL
);

-- Personal access tokens as the catalog shows them, projected from the owners' User events.
CREATE TABLE IF NOT EXISTS catalog_access_tokens (
    id integer PRIMARY KEY,
    owner_id integer NOT NULL,
    read_only boolean NOT NULL,
    expiry_date timestamptz,
    revoked boolean NOT NULL DEFAULT false,
    doc jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS catalog_access_tokens_owner ON catalog_access_tokens (owner_id);

-- The SHA-256 digest of each token value (never in the log), written when the token is made,
-- and when the token was last used (at most one write a token per LAST_USE_INTERVAL).
CREATE TABLE IF NOT EXISTS access_token_keys (
    token_id integer PRIMARY KEY,
    digest text UNIQUE NOT NULL,
    last_used timestamptz
);

-- Token documents with their last use, for the token lists.
CREATE OR REPLACE VIEW access_token_docs AS
SELECT t.id, t.owner_id, t.expiry_date, t.revoked,
       t.doc || jsonb_build_object('last_used_date', to_char(k.last_used AT TIME ZONE 'UTC',
           'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')) AS doc
FROM catalog_access_tokens t LEFT JOIN access_token_keys k ON k.token_id = t.id;

-- Background requests (CVAT's /api/requests).
CREATE TABLE IF NOT EXISTS background_requests (
    id text PRIMARY KEY,
    owner_id integer NOT NULL,
    operation jsonb NOT NULL,
    status text NOT NULL,
    message text NOT NULL DEFAULT '',
    progress double precision,
    created timestamptz NOT NULL DEFAULT now(),
    started timestamptz,
    finished timestamptz,
    result_id integer,
    result_url text
);

-- Answers to requests sent with an Idempotency-Key, kept 24 hours.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    user_id integer NOT NULL,
    key text NOT NULL,
    fingerprint text NOT NULL,
    status integer,
    body bytea,
    content_type text,
    created timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);

-- The history projection: one row per event of a job's stream.
CREATE TABLE IF NOT EXISTS job_history (
    stream uuid NOT NULL,
    version integer NOT NULL,
    event_type text NOT NULL,
    actor integer,
    command_id text,
    recorded_at timestamptz NOT NULL,
    objects jsonb NOT NULL,
    details jsonb,
    PRIMARY KEY (stream, version)
);
CREATE INDEX IF NOT EXISTS job_history_time ON job_history (stream, recorded_at);
CREATE INDEX IF NOT EXISTS job_history_command ON job_history (stream, command_id);

-- Which server instance runs a background request (its advisory lock says if it still lives).
ALTER TABLE background_requests ADD COLUMN IF NOT EXISTS instance integer;

-- Quality control (projections/quality.py): one live report per annotation job and per task
-- with a configured ground truth job; frame results and conflicts of each job report.
CREATE SEQUENCE IF NOT EXISTS palimpsest_quality_report_id;
CREATE TABLE IF NOT EXISTS quality_reports (
    id integer PRIMARY KEY,
    target text NOT NULL,
    task_id integer NOT NULL,
    job_id integer,
    parameters jsonb NOT NULL,
    comparison jsonb NOT NULL,
    doc jsonb NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS quality_reports_target
    ON quality_reports (task_id, coalesce(job_id, 0));
CREATE TABLE IF NOT EXISTS quality_frames (
    job_id integer NOT NULL,
    frame integer NOT NULL,
    doc jsonb NOT NULL,
    PRIMARY KEY (job_id, frame)
);
CREATE SEQUENCE IF NOT EXISTS palimpsest_quality_conflict_id;
CREATE TABLE IF NOT EXISTS quality_conflicts (
    id bigint PRIMARY KEY DEFAULT nextval('palimpsest_quality_conflict_id'),
    task_id integer NOT NULL,
    job_id integer NOT NULL,
    frame integer NOT NULL,
    doc jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS quality_conflicts_job ON quality_conflicts (job_id, frame);
CREATE INDEX IF NOT EXISTS quality_conflicts_task ON quality_conflicts (task_id);
