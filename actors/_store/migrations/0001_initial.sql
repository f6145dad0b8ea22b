-- Kestrel store, version 1: every table the coordinator needs.
-- Ids are text (22-char base62 of a uuid4, like Kestra's); times are timestamptz (UTC);
-- JSON documents are jsonb; state names are Kestra's (see flows/_states.py).

-- Flows: the latest revision per flow, and every revision ever saved (source verbatim).
CREATE TABLE flows (
    namespace   text        NOT NULL,
    flow_id     text        NOT NULL,
    revision    integer     NOT NULL,
    checksum    text        NOT NULL,
    source      text        NOT NULL,
    deleted     boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, flow_id)
);

CREATE TABLE flow_revisions (
    namespace   text        NOT NULL,
    flow_id     text        NOT NULL,
    revision    integer     NOT NULL,
    checksum    text        NOT NULL,
    source      text        NOT NULL,
    deleted     boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, flow_id, revision)
);

-- Executions. state_history is a jsonb array of {"state": ..., "date": ...} in order.
CREATE TABLE executions (
    id                  text        PRIMARY KEY,
    namespace           text        NOT NULL,
    flow_id             text        NOT NULL,
    flow_revision       integer     NOT NULL,
    state               text        NOT NULL,
    state_history       jsonb       NOT NULL DEFAULT '[]',
    inputs              jsonb       NOT NULL DEFAULT '{}',
    trigger             jsonb,
    labels              jsonb       NOT NULL DEFAULT '{}',
    outputs             jsonb,
    original_id         text,
    parent_id           text,
    parent_task_run_id  text,
    dedupe_key          text,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    ended_at            timestamptz,
    CONSTRAINT executions_dedupe_key UNIQUE (dedupe_key)
);

CREATE INDEX executions_flow ON executions (namespace, flow_id, created_at DESC);
CREATE INDEX executions_created ON executions (created_at DESC);
CREATE INDEX executions_state ON executions (state, created_at DESC);
CREATE INDEX executions_labels ON executions USING gin (labels jsonb_path_ops);
CREATE INDEX executions_original ON executions (original_id) WHERE original_id IS NOT NULL;
CREATE INDEX executions_parent ON executions (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX executions_active ON executions (created_at)
    WHERE state NOT IN ('SUCCESS', 'WARNING', 'FAILED', 'KILLED', 'CANCELLED', 'SKIPPED');

-- Task runs: one per (task, iteration value); attempts are their own rows.
-- seq records creation order (the order task runs were written in).
CREATE TABLE task_runs (
    id                  text        PRIMARY KEY,
    seq                 bigint      GENERATED ALWAYS AS IDENTITY,
    execution_id        text        NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    task_id             text        NOT NULL,
    parent_task_run_id  text,
    value               text,
    iteration           integer,
    state               text        NOT NULL,
    state_history       jsonb       NOT NULL DEFAULT '[]',
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    ended_at            timestamptz
);

CREATE INDEX task_runs_execution ON task_runs (execution_id, seq);

CREATE TABLE task_run_attempts (
    task_run_id   text        NOT NULL REFERENCES task_runs (id) ON DELETE CASCADE,
    attempt       integer     NOT NULL CHECK (attempt >= 1),
    execution_id  text        NOT NULL,
    state         text        NOT NULL,
    started_at    timestamptz,
    ended_at      timestamptz,
    worker        text,
    node          text,
    error         jsonb,
    PRIMARY KEY (task_run_id, attempt)
);

CREATE INDEX task_run_attempts_execution ON task_run_attempts (execution_id);

-- Outputs of a task run (a JSON object; later writes merge top-level keys).
CREATE TABLE outputs (
    task_run_id   text        PRIMARY KEY REFERENCES task_runs (id) ON DELETE CASCADE,
    execution_id  text        NOT NULL,
    outputs       jsonb       NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX outputs_execution ON outputs (execution_id);

-- Logs: seq is the streaming cursor ("give me lines after seq N").
CREATE TABLE logs (
    seq           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    execution_id  text        NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    task_run_id   text,
    attempt       integer,
    level         text        NOT NULL,
    at            timestamptz NOT NULL,
    message       text        NOT NULL
);

CREATE INDEX logs_execution ON logs (execution_id, seq);

-- Namespaced KV store with typed JSON values and an optional expiry.
CREATE TABLE kv (
    namespace   text        NOT NULL,
    key         text        NOT NULL,
    type        text        NOT NULL,
    value       jsonb       NOT NULL,
    expires_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, key)
);

CREATE INDEX kv_expiry ON kv (expires_at) WHERE expires_at IS NOT NULL;

-- Where each trigger listener is in its source.
CREATE TABLE trigger_states (
    namespace      text        NOT NULL,
    flow_id        text        NOT NULL,
    trigger_id     text        NOT NULL,
    cursor         jsonb,
    last_event_at  timestamptz,
    status         text        NOT NULL,
    last_error     text,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, flow_id, trigger_id)
);

-- Messages that could not become executions, kept verbatim with the reason.
CREATE TABLE dead_letters (
    id          text        PRIMARY KEY,
    source      text        NOT NULL,
    namespace   text,
    flow_id     text,
    trigger_id  text,
    payload     bytea       NOT NULL,
    metadata    jsonb       NOT NULL DEFAULT '{}',
    reason      text        NOT NULL,
    attempts    integer     NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX dead_letters_source ON dead_letters (source, created_at DESC);
CREATE INDEX dead_letters_flow ON dead_letters (namespace, flow_id, created_at DESC);

-- Leases with fencing epochs. Rows are never deleted, so an epoch never goes back.
CREATE TABLE leases (
    kind         text        NOT NULL,
    key          text        NOT NULL,
    owner        text        NOT NULL,
    epoch        bigint      NOT NULL,
    expires_at   timestamptz NOT NULL,
    acquired_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, key)
);

CREATE INDEX leases_expiry ON leases (kind, expires_at);
