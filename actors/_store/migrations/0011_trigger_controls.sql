-- Triggers switched off through the API (PUT /api/v1/triggers/{ns}/{flow}/{trigger}).
-- A row means "disabled"; enabling deletes it. Kept apart from trigger_states, which
-- the running listeners rewrite.
CREATE TABLE disabled_triggers (
    namespace    text        NOT NULL,
    flow_id      text        NOT NULL,
    trigger_id   text        NOT NULL,
    disabled_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, flow_id, trigger_id)
);
