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
CREATE SEQUENCE IF NOT EXISTS palimpsest_organization_id;
CREATE SEQUENCE IF NOT EXISTS palimpsest_membership_id;

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
-- false while a confirmation link sent to the user's address is not yet followed
ALTER TABLE catalog_users ADD COLUMN IF NOT EXISTS email_verified boolean NOT NULL DEFAULT true;

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

CREATE TABLE IF NOT EXISTS catalog_organizations (
    id integer PRIMARY KEY,
    uuid uuid UNIQUE NOT NULL,
    slug text NOT NULL,
    doc jsonb NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS catalog_organizations_slug ON catalog_organizations (lower(slug));

CREATE TABLE IF NOT EXISTS catalog_memberships (
    id integer PRIMARY KEY,
    org_id integer NOT NULL,
    user_id integer NOT NULL,
    role text NOT NULL,
    doc jsonb NOT NULL,
    UNIQUE (org_id, user_id)
);
CREATE INDEX IF NOT EXISTS catalog_memberships_user ON catalog_memberships (user_id);

CREATE TABLE IF NOT EXISTS catalog_invitations (
    key text PRIMARY KEY,
    org_id integer NOT NULL,
    email text NOT NULL,
    accepted boolean NOT NULL,
    doc jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS catalog_invitations_email ON catalog_invitations (email);

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

-- OpenID Connect sign-ins under way (web/oidc.py): the state sent to the provider and what
-- finishing the sign-in needs; each row is taken once, by the callback, within ten minutes.
CREATE TABLE IF NOT EXISTS oidc_sign_ins (
    state text PRIMARY KEY,
    provider text NOT NULL,
    code_verifier text NOT NULL,
    nonce text NOT NULL,
    redirect_uri text NOT NULL,
    next_path text,
    expires timestamptz NOT NULL
);

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

-- The analytics projection (projections/analytics.py): performance figures and the event log
-- of CVAT's /api/events, all rebuilt from the log.
CREATE TABLE IF NOT EXISTS analytics_users (
    user_id integer PRIMARY KEY,
    username text NOT NULL,
    email text
);
CREATE TABLE IF NOT EXISTS analytics_tasks (
    task_id integer PRIMARY KEY,
    project_id integer
);
CREATE TABLE IF NOT EXISTS analytics_jobs (
    job_id integer PRIMARY KEY,
    stream uuid NOT NULL UNIQUE,
    task_id integer NOT NULL,
    project_id integer,
    stop_frame integer NOT NULL,
    state text NOT NULL,
    state_since timestamptz NOT NULL,
    in_progress_seconds double precision NOT NULL DEFAULT 0,
    deleted boolean NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS analytics_jobs_task ON analytics_jobs (task_id);
CREATE INDEX IF NOT EXISTS analytics_jobs_project ON analytics_jobs (project_id);
-- Live objects of each job, with how many frames each counts for (a track: its visible frames).
CREATE TABLE IF NOT EXISTS analytics_objects (
    job_id integer NOT NULL,
    object_id integer NOT NULL,
    creator integer NOT NULL,  -- 0: the system
    frames integer NOT NULL,
    PRIMARY KEY (job_id, object_id)
);
-- Per job, user and UTC day: objects created, updated, deleted, and active seconds.
CREATE TABLE IF NOT EXISTS analytics_daily (
    job_id integer NOT NULL,
    user_id integer NOT NULL,  -- 0: the system
    day date NOT NULL,
    created integer NOT NULL DEFAULT 0,
    updated integer NOT NULL DEFAULT 0,
    deleted integer NOT NULL DEFAULT 0,
    active_seconds double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, user_id, day)
);
CREATE INDEX IF NOT EXISTS analytics_daily_user ON analytics_daily (user_id, day);
CREATE TABLE IF NOT EXISTS analytics_last_activity (
    job_id integer NOT NULL,
    user_id integer NOT NULL,
    at timestamptz NOT NULL,
    PRIMARY KEY (job_id, user_id)
);
-- Review rounds (projections/analytics.py): where each job stands, and every verdict on it.
CREATE TABLE IF NOT EXISTS analytics_review_jobs (
    job_id integer PRIMARY KEY,
    stage text NOT NULL,
    assignee_id integer,
    annotator_id integer,  -- the assignee while the job was last in the annotation stage
    completed_at timestamptz  -- when its annotator last completed it, until a verdict
);
CREATE TABLE IF NOT EXISTS analytics_review_verdicts (
    job_id integer NOT NULL,
    position bigint NOT NULL,
    annotator_id integer,
    reviewer_id integer,
    accepted boolean NOT NULL,  -- moved to acceptance; false: rejected from validation
    at timestamptz NOT NULL,
    waited_seconds double precision,  -- since the annotator completed it (null: not completed)
    PRIMARY KEY (job_id, position)
);
CREATE INDEX IF NOT EXISTS analytics_review_verdicts_annotator
    ON analytics_review_verdicts (annotator_id);
-- CVAT's event rows (client events as posted, and server events derived from the log).
CREATE TABLE IF NOT EXISTS analytics_event_records (
    position bigint NOT NULL,
    seq integer NOT NULL,
    scope text NOT NULL,
    obj_name text,
    obj_id bigint,
    obj_val text,
    source text NOT NULL,
    timestamp timestamptz NOT NULL,
    count integer,
    duration bigint NOT NULL DEFAULT 0,
    project_id integer,
    task_id integer,
    job_id integer,
    user_id integer,
    user_name text,
    user_email text,
    org_id integer,
    org_slug text,
    payload text,
    PRIMARY KEY (position, seq)
);
CREATE INDEX IF NOT EXISTS analytics_event_records_time ON analytics_event_records (timestamp);

-- Webhooks (CVAT's /api/webhooks), projected from their own aggregates' events.
CREATE SEQUENCE IF NOT EXISTS palimpsest_webhook_id;
CREATE TABLE IF NOT EXISTS catalog_webhooks (
    id integer PRIMARY KEY,
    uuid uuid UNIQUE NOT NULL,
    project_id integer,
    is_active boolean NOT NULL,
    events text[] NOT NULL,
    doc jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS catalog_webhooks_project ON catalog_webhooks (project_id);

-- The last catalog document of each deleted project, task and job (webhooks send it), kept
-- by a trigger whatever deletes the row.
CREATE TABLE IF NOT EXISTS catalog_tombstones (
    kind text NOT NULL,
    id integer NOT NULL,
    doc jsonb NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE OR REPLACE FUNCTION catalog_bury() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO catalog_tombstones (kind, id, doc) VALUES (TG_ARGV[0], OLD.id, OLD.doc)
    ON CONFLICT (kind, id) DO UPDATE SET doc = EXCLUDED.doc;
    RETURN OLD;
END $$;
CREATE OR REPLACE TRIGGER catalog_projects_bury BEFORE DELETE ON catalog_projects
    FOR EACH ROW EXECUTE FUNCTION catalog_bury('project');
CREATE OR REPLACE TRIGGER catalog_tasks_bury BEFORE DELETE ON catalog_tasks
    FOR EACH ROW EXECUTE FUNCTION catalog_bury('task');
CREATE OR REPLACE TRIGGER catalog_jobs_bury BEFORE DELETE ON catalog_jobs
    FOR EACH ROW EXECUTE FUNCTION catalog_bury('job');
CREATE OR REPLACE TRIGGER catalog_issues_bury BEFORE DELETE ON catalog_issues
    FOR EACH ROW EXECUTE FUNCTION catalog_bury('issue');
CREATE OR REPLACE TRIGGER catalog_comments_bury BEFORE DELETE ON catalog_comments
    FOR EACH ROW EXECUTE FUNCTION catalog_bury('comment');
CREATE OR REPLACE TRIGGER catalog_memberships_bury BEFORE DELETE ON catalog_memberships
    FOR EACH ROW EXECUTE FUNCTION catalog_bury('membership');
CREATE OR REPLACE TRIGGER catalog_organizations_bury BEFORE DELETE ON catalog_organizations
    FOR EACH ROW EXECUTE FUNCTION catalog_bury('organization');
-- Invitations are keyed by their key, not an id.
CREATE TABLE IF NOT EXISTS catalog_invitation_tombstones (
    key text PRIMARY KEY,
    doc jsonb NOT NULL
);
CREATE OR REPLACE FUNCTION catalog_bury_invitation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO catalog_invitation_tombstones (key, doc) VALUES (OLD.key, OLD.doc)
    ON CONFLICT (key) DO UPDATE SET doc = EXCLUDED.doc;
    RETURN OLD;
END $$;
CREATE OR REPLACE TRIGGER catalog_invitations_bury BEFORE DELETE ON catalog_invitations
    FOR EACH ROW EXECUTE FUNCTION catalog_bury_invitation();

-- Each webhook's signing secret: never in the log, never returned.
CREATE TABLE IF NOT EXISTS webhook_secrets (
    webhook_id integer PRIMARY KEY,
    secret text NOT NULL
);

-- Payloads waiting to be sent, written by the webhook dispatcher as it follows the log.
CREATE TABLE IF NOT EXISTS webhook_outbox (
    id bigserial PRIMARY KEY,
    webhook_id integer NOT NULL,
    event text NOT NULL,
    payload text NOT NULL,  -- the JSON body, sent and signed as stored
    redelivery boolean NOT NULL DEFAULT false,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt timestamptz NOT NULL DEFAULT now(),
    done boolean NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS webhook_outbox_due ON webhook_outbox (next_attempt) WHERE NOT done;

-- Every attempt to send a payload (CVAT's deliveries), with the receiver's answer.
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id bigserial PRIMARY KEY,
    webhook_id integer NOT NULL,
    doc jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);

-- Webhook documents with their last delivery, and who manages them (the project's owner;
-- also the maintainers of organization_id). Those of a deleted project or organization are gone.
ALTER TABLE catalog_webhooks ADD COLUMN IF NOT EXISTS organization_id integer;
CREATE INDEX IF NOT EXISTS catalog_webhooks_organization ON catalog_webhooks (organization_id);
DROP VIEW IF EXISTS webhook_docs;
CREATE VIEW webhook_docs AS
SELECT w.id, w.project_id, p.owner_id AS manager_id,
       w.doc || jsonb_strip_nulls(jsonb_build_object(
           'last_status', d.doc->'status_code', 'last_delivery_date', d.doc->'created_date')) AS doc,
       w.organization_id
FROM catalog_webhooks w
LEFT JOIN catalog_projects p ON p.id = w.project_id
LEFT JOIN LATERAL (
    SELECT doc FROM webhook_deliveries WHERE webhook_id = w.id ORDER BY id DESC LIMIT 1
) d ON true
WHERE CASE WHEN w.project_id IS NOT NULL THEN p.id IS NOT NULL
      ELSE EXISTS (SELECT 1 FROM catalog_organizations o WHERE o.id = w.organization_id) END;
ALTER TABLE webhook_deliveries ADD COLUMN IF NOT EXISTS outbox_id bigint;
CREATE OR REPLACE VIEW webhook_delivery_docs AS
SELECT id, webhook_id, doc || jsonb_build_object('id', id, 'webhook_id', webhook_id) AS doc
FROM webhook_deliveries;
-- Where and how to send a webhook's deliveries (a deleted one is missing).
CREATE OR REPLACE VIEW webhook_targets AS
SELECT w.id, w.doc->>'target_url' AS target_url, (w.doc->>'enable_ssl')::boolean AS enable_ssl,
       COALESCE(s.secret, '') AS secret, w.is_active
FROM catalog_webhooks w LEFT JOIN webhook_secrets s ON s.webhook_id = w.id;

-- The cross-job annotations read model: one row per current top-level object of every job,
-- kept by a background runner (projections/annotation_index.py), so cross-job questions are SQL.
CREATE TABLE IF NOT EXISTS annotation_index (
    job_id integer NOT NULL,
    object_id bigint NOT NULL,
    task_id integer NOT NULL,
    project_id integer,
    kind text NOT NULL,
    type text,
    label_id integer NOT NULL,
    frame integer NOT NULL,
    last_frame integer NOT NULL,
    revision integer NOT NULL,
    updated_by integer,
    updated_at timestamptz NOT NULL,
    data jsonb NOT NULL,
    PRIMARY KEY (job_id, object_id)
);
CREATE INDEX IF NOT EXISTS annotation_index_project_label
    ON annotation_index (project_id, label_id, kind);
CREATE INDEX IF NOT EXISTS annotation_index_task_label ON annotation_index (task_id, label_id);

-- The ids around each job (and the project of every task made), as the annotation index
-- learnt them from the log.
CREATE TABLE IF NOT EXISTS annotation_index_jobs (
    stream uuid PRIMARY KEY,
    job_id integer UNIQUE NOT NULL,
    task_id integer NOT NULL,
    project_id integer
);
CREATE TABLE IF NOT EXISTS annotation_index_tasks (
    task_id integer PRIMARY KEY,
    project_id integer
);

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

-- Cloud storages (CVAT's /api/cloudstorages), projected from their own aggregates' events.
CREATE SEQUENCE IF NOT EXISTS palimpsest_cloudstorage_id;
CREATE TABLE IF NOT EXISTS catalog_cloud_storages (
    id integer PRIMARY KEY,
    uuid uuid NOT NULL UNIQUE,
    doc jsonb NOT NULL
);
-- Each cloud storage's credentials, sealed with the server's secret key: never in the log,
-- never returned.
CREATE TABLE IF NOT EXISTS cloud_storage_credentials (
    cloud_storage_id integer PRIMARY KEY,
    sealed bytea NOT NULL
);

-- The SHA-256 digests of the tokens in emailed links (password reset, email confirmation),
-- never in the log; each bound to the password hash's fingerprint or the address when made.
CREATE TABLE IF NOT EXISTS account_link_tokens (
    digest text PRIMARY KEY,
    purpose text NOT NULL,
    user_id integer NOT NULL,
    bound_to text NOT NULL,
    expires timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS account_link_tokens_user ON account_link_tokens (user_id);

-- Failed sign-ins, per account (the login name given) and per client address, for throttling.
CREATE TABLE IF NOT EXISTS login_failures (
    key text NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS login_failures_key ON login_failures (key, failed_at);

-- What the permission rule reads (projections/visibility.py) as columns, kept by PostgreSQL
-- from each row's document and indexed, so that lists filter on them instead of taking
-- organization, assignee and project out of the jsonb of every row. Owners are the plain
-- owner_id columns the catalog writes. (A generated column is left out of `INSERT ...
-- SELECT *`: projections/rebuild.py lists the columns it copies.)
ALTER TABLE catalog_projects ADD COLUMN IF NOT EXISTS organization_id integer
    GENERATED ALWAYS AS ((doc->>'organization')::int) STORED;
ALTER TABLE catalog_projects ADD COLUMN IF NOT EXISTS assignee_id integer
    GENERATED ALWAYS AS ((doc->'assignee'->>'id')::int) STORED;
ALTER TABLE catalog_tasks ADD COLUMN IF NOT EXISTS organization_id integer
    GENERATED ALWAYS AS ((doc->>'organization')::int) STORED;
ALTER TABLE catalog_tasks ADD COLUMN IF NOT EXISTS assignee_id integer
    GENERATED ALWAYS AS ((doc->'assignee'->>'id')::int) STORED;
ALTER TABLE catalog_jobs ADD COLUMN IF NOT EXISTS organization_id integer
    GENERATED ALWAYS AS ((doc->>'organization')::int) STORED;
ALTER TABLE catalog_jobs ADD COLUMN IF NOT EXISTS assignee_id integer
    GENERATED ALWAYS AS ((doc->'assignee'->>'id')::int) STORED;
ALTER TABLE catalog_jobs ADD COLUMN IF NOT EXISTS project_id integer
    GENERATED ALWAYS AS ((doc->>'project_id')::int) STORED;
ALTER TABLE catalog_cloud_storages ADD COLUMN IF NOT EXISTS organization_id integer
    GENERATED ALWAYS AS ((doc->>'organization')::int) STORED;
ALTER TABLE catalog_cloud_storages ADD COLUMN IF NOT EXISTS owner_id integer
    GENERATED ALWAYS AS ((doc->'owner'->>'id')::int) STORED;
-- (the expression indexes these columns replace)
DROP INDEX IF EXISTS catalog_projects_owner, catalog_projects_assignee, catalog_tasks_owner,
    catalog_tasks_assignee, catalog_jobs_assignee;
CREATE INDEX IF NOT EXISTS catalog_projects_organization_id ON catalog_projects (organization_id);
CREATE INDEX IF NOT EXISTS catalog_projects_owner_id ON catalog_projects (owner_id);
CREATE INDEX IF NOT EXISTS catalog_projects_assignee_id ON catalog_projects (assignee_id);
CREATE INDEX IF NOT EXISTS catalog_tasks_organization_id ON catalog_tasks (organization_id);
CREATE INDEX IF NOT EXISTS catalog_tasks_owner_id ON catalog_tasks (owner_id);
CREATE INDEX IF NOT EXISTS catalog_tasks_assignee_id ON catalog_tasks (assignee_id);
CREATE INDEX IF NOT EXISTS catalog_jobs_organization_id ON catalog_jobs (organization_id);
CREATE INDEX IF NOT EXISTS catalog_jobs_assignee_id ON catalog_jobs (assignee_id);
CREATE INDEX IF NOT EXISTS catalog_jobs_project_id ON catalog_jobs (project_id);
