-- `kestrel_write_history_v2` (issue 18): the writes of `kestrel_write_history` (0018),
-- fenced the same way, answering only what the caller cannot infer: the stale leases and
-- the rows that were NOT written because their target is missing. A batch whose writes
-- all took answers no row, so the client decodes nothing per write. 0018's function
-- stays for clients of the previous release still running against an upgraded database
-- (its answer means the opposite: a row per row written).
--
-- Also cheaper in the server: the fencing is one statement (lock and judge the leases
-- together; the stale ones' holders are read again only when there are some), and the
-- existence checks of new task runs and log lines are evaluated once per row.
--
-- Parameters: as 0018; a kind with no rows may come as NULLs instead of empty arrays
-- (cheaper to send and to receive: 66 parameters per call). Result rows (out_kind, out_a, out_b, out_n):
--   stale      lease position, current owner (NULL: no row), current epoch
--   run        execution id of task runs not written: the execution does not exist
--   execution  execution id not transitioned (no such execution)
--   task_run   execution id, task run id not transitioned (no such task run)
--   attempt    execution id, task run id, attempt number not written (no such task run)
--   outputs    execution id, task run id not merged (no such task run)
--   labels     execution id whose labels were not merged (no such execution)
--   log        execution id whose lines were not appended (no such execution)
--   unreleased lease position (in the e_* arrays) not released (no longer ours)
-- Rows refused because their lease is stale are reported by the `stale` row only.
CREATE FUNCTION kestrel_write_history_v2(
    f_kind text[], f_key text[], f_owner text[], f_epoch bigint[],
    r_id text[], r_execution_id text[], r_task_id text[], r_parent text[], r_value text[],
    r_iteration int[], r_state text[], r_history text[], r_created_at timestamptz[],
    r_ended_at timestamptz[], r_updated_at timestamptz[], r_lease int[],
    x_id text[], x_state text[], x_history text[], x_at timestamptz[],
    x_ended_at timestamptz[], x_outputs text[], x_lease int[],
    t_id text[], t_execution_id text[], t_state text[], t_history text[], t_at timestamptz[],
    t_ended_at timestamptz[], t_lease int[], t_merged boolean[],
    a_task_run_id text[], a_attempt int[], a_execution_id text[], a_state text[],
    a_started_at timestamptz[], a_ended_at timestamptz[], a_worker text[], a_node text[],
    a_error text[], a_lease int[],
    o_execution_id text[], o_task_run_id text[], o_outputs text[], o_lease int[],
    b_id text[], b_labels text[], b_lease int[],
    l_execution_id text[], l_task_run_id text[], l_attempt int[], l_level text[],
    l_at timestamptz[], l_message text[],
    s_namespace text[], s_flow_id text[], s_trigger_id text[], s_cursor text[],
    s_last_event_at timestamptz[], s_status text[], s_last_error text[], s_lease int[],
    e_kind text[], e_key text[], e_owner text[], e_epoch bigint[])
RETURNS TABLE (out_kind text, out_a text, out_b text, out_n bigint)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
    stale int[] := '{}';
    inserted text[] := '{}';
    unknown text[] := '{}';
BEGIN
    -- Fencing: lock the leases the writes carry (in key order, FOR SHARE), so none
    -- changes hands before COMMIT, and judge them on the locked rows.
    IF cardinality(f_kind) > 0 THEN
        WITH locked AS MATERIALIZED (
                SELECT l.kind, l.key, l.owner, l.epoch FROM leases AS l
                    JOIN unnest(f_kind, f_key) AS u(kind, key) USING (kind, key)
                ORDER BY l.kind, l.key FOR SHARE OF l)
        SELECT coalesce(array_agg(u.i::int), '{}') INTO stale
            FROM unnest(f_kind, f_key, f_owner, f_epoch) WITH ORDINALITY
                 AS u(kind, key, owner, epoch, i)
            LEFT JOIN locked AS l ON l.kind = u.kind AND l.key = u.key
            WHERE l.owner IS DISTINCT FROM u.owner OR l.epoch IS DISTINCT FROM u.epoch;
        IF cardinality(stale) > 0 THEN
            RETURN QUERY
                SELECT 'stale', u.i::text, l.owner, l.epoch
                FROM unnest(f_kind, f_key) WITH ORDINALITY AS u(kind, key, i)
                LEFT JOIN leases AS l ON l.kind = u.kind AND l.key = u.key
                WHERE u.i = ANY (stale);
        END IF;
    END IF;

    -- New task runs; one transitioned in the same batch comes in its last state (its
    -- transitions are merged into the row: t_merged), so it is written once.
    IF cardinality(r_id) > 0 THEN
        WITH runs AS MATERIALIZED (
                SELECT r.*, EXISTS (SELECT 1 FROM executions x WHERE x.id = r.execution_id)
                           AS known
                FROM unnest(r_id, r_execution_id, r_task_id, r_parent, r_value, r_iteration,
                            r_state, r_history, r_created_at, r_ended_at, r_updated_at,
                            r_lease) WITH ORDINALITY
                    AS r(id, execution_id, task_id, parent_task_run_id, value, iteration,
                         state, history, created_at, ended_at, updated_at, lease, ord)
                WHERE r.lease IS NULL OR r.lease <> ALL (stale)),
            ins AS (
                INSERT INTO task_runs (id, execution_id, task_id, parent_task_run_id, value,
                    iteration, state, state_history, created_at, updated_at, ended_at)
                SELECT r.id, r.execution_id, r.task_id, r.parent_task_run_id, r.value,
                       r.iteration, r.state, r.history::jsonb, r.created_at, r.updated_at,
                       r.ended_at
                FROM runs AS r WHERE r.known ORDER BY r.ord
                ON CONFLICT (id) DO NOTHING
                RETURNING id)
        SELECT (SELECT coalesce(array_agg(ins.id), '{}') FROM ins),
               (SELECT coalesce(array_agg(DISTINCT runs.execution_id), '{}')
                FROM runs WHERE NOT runs.known)
            INTO inserted, unknown;
        IF cardinality(unknown) > 0 THEN
            RETURN QUERY
                SELECT 'run', a.id, NULL::text, NULL::bigint FROM unnest(unknown) AS a(id);
        END IF;
    END IF;

    IF cardinality(x_id) > 0 THEN
        RETURN QUERY
            WITH done AS (
                UPDATE executions AS e
                SET state = u.state, state_history = e.state_history || u.history::jsonb,
                    updated_at = greatest(e.updated_at, u.at), ended_at = u.ended_at,
                    outputs = coalesce(u.outputs::jsonb, e.outputs)
                FROM unnest(x_id, x_state, x_history, x_at, x_ended_at, x_outputs, x_lease)
                     AS u(id, state, history, at, ended_at, outputs, lease)
                WHERE e.id = u.id AND (u.lease IS NULL OR u.lease <> ALL (stale))
                RETURNING e.id)
            SELECT 'execution', u.id, NULL::text, NULL::bigint
            FROM unnest(x_id, x_lease) AS u(id, lease)
            WHERE (u.lease IS NULL OR u.lease <> ALL (stale))
              AND NOT EXISTS (SELECT 1 FROM done WHERE done.id = u.id);
    END IF;

    -- Skipped when every transition was merged into a task run the insert above wrote
    -- (a one-task run's first batch): the statement would match nothing.
    IF cardinality(t_id) > 0 AND NOT (t_merged <@ ARRAY[true] AND t_id <@ inserted) THEN
        RETURN QUERY
            WITH done AS (
                UPDATE task_runs AS t
                SET state = u.state, state_history = t.state_history || u.history::jsonb,
                    updated_at = greatest(t.updated_at, u.at), ended_at = u.ended_at
                FROM unnest(t_id, t_execution_id, t_state, t_history, t_at, t_ended_at,
                            t_lease, t_merged)
                     AS u(id, execution_id, state, history, at, ended_at, lease, merged)
                WHERE t.id = u.id AND t.execution_id = u.execution_id
                  AND (u.lease IS NULL OR u.lease <> ALL (stale))
                  AND NOT (u.merged AND u.id = ANY (inserted))  -- already in the insert
                RETURNING t.execution_id, t.id)
            SELECT 'task_run', u.execution_id, u.id, NULL::bigint
            FROM unnest(t_id, t_execution_id, t_lease, t_merged)
                 AS u(id, execution_id, lease, merged)
            WHERE (u.lease IS NULL OR u.lease <> ALL (stale))
              AND NOT (u.merged AND u.id = ANY (inserted))
              AND NOT EXISTS (SELECT 1 FROM done
                              WHERE done.id = u.id AND done.execution_id = u.execution_id);
    END IF;

    IF cardinality(a_task_run_id) > 0 THEN
        RETURN QUERY
            WITH done AS (
                INSERT INTO task_run_attempts AS a (task_run_id, attempt, execution_id, state,
                    started_at, ended_at, worker, node, error)
                SELECT u.task_run_id, u.attempt, u.execution_id, u.state, u.started_at,
                       u.ended_at, u.worker, u.node, u.error::jsonb
                FROM unnest(a_task_run_id, a_attempt, a_execution_id, a_state, a_started_at,
                            a_ended_at, a_worker, a_node, a_error, a_lease)
                     AS u(task_run_id, attempt, execution_id, state, started_at, ended_at,
                          worker, node, error, lease)
                JOIN task_runs AS t
                  ON t.id = u.task_run_id AND t.execution_id = u.execution_id
                WHERE u.lease IS NULL OR u.lease <> ALL (stale)
                ON CONFLICT (task_run_id, attempt) DO UPDATE
                SET state = excluded.state,
                    started_at = coalesce(excluded.started_at, a.started_at),
                    ended_at = coalesce(excluded.ended_at, a.ended_at),
                    worker = coalesce(excluded.worker, a.worker),
                    node = coalesce(excluded.node, a.node),
                    error = coalesce(excluded.error, a.error)
                RETURNING a.execution_id, a.task_run_id, a.attempt)
            SELECT 'attempt', u.execution_id, u.task_run_id, u.attempt::bigint
            FROM unnest(a_task_run_id, a_attempt, a_execution_id, a_lease)
                 AS u(task_run_id, attempt, execution_id, lease)
            WHERE (u.lease IS NULL OR u.lease <> ALL (stale))
              AND NOT EXISTS (SELECT 1 FROM done
                              WHERE done.task_run_id = u.task_run_id
                                AND done.attempt = u.attempt
                                AND done.execution_id = u.execution_id);
    END IF;

    IF cardinality(o_task_run_id) > 0 THEN
        RETURN QUERY
            WITH done AS (
                INSERT INTO outputs AS o (task_run_id, execution_id, outputs, updated_at)
                SELECT u.task_run_id, u.execution_id, u.outputs::jsonb, now()
                FROM unnest(o_execution_id, o_task_run_id, o_outputs, o_lease)
                     AS u(execution_id, task_run_id, outputs, lease)
                JOIN task_runs AS t
                  ON t.id = u.task_run_id AND t.execution_id = u.execution_id
                WHERE u.lease IS NULL OR u.lease <> ALL (stale)
                ON CONFLICT (task_run_id) DO UPDATE
                SET outputs = o.outputs || excluded.outputs, updated_at = now()
                RETURNING o.execution_id, o.task_run_id)
            SELECT 'outputs', u.execution_id, u.task_run_id, NULL::bigint
            FROM unnest(o_execution_id, o_task_run_id, o_lease)
                 AS u(execution_id, task_run_id, lease)
            WHERE (u.lease IS NULL OR u.lease <> ALL (stale))
              AND NOT EXISTS (SELECT 1 FROM done
                              WHERE done.task_run_id = u.task_run_id
                                AND done.execution_id = u.execution_id);
    END IF;

    IF cardinality(b_id) > 0 THEN
        RETURN QUERY
            WITH done AS (
                UPDATE executions AS e SET labels = e.labels || u.labels::jsonb
                FROM unnest(b_id, b_labels, b_lease) AS u(id, labels, lease)
                WHERE e.id = u.id AND (u.lease IS NULL OR u.lease <> ALL (stale))
                RETURNING e.id)
            SELECT 'labels', u.id, NULL::text, NULL::bigint
            FROM unnest(b_id, b_lease) AS u(id, lease)
            WHERE (u.lease IS NULL OR u.lease <> ALL (stale))
              AND NOT EXISTS (SELECT 1 FROM done WHERE done.id = u.id);
    END IF;

    IF cardinality(l_execution_id) > 0 THEN
        RETURN QUERY
            WITH u AS MATERIALIZED (
                SELECT l.*, EXISTS (SELECT 1 FROM executions e WHERE e.id = l.execution_id)
                           AS known
                FROM unnest(l_execution_id, l_task_run_id, l_attempt, l_level, l_at,
                            l_message) WITH ORDINALITY
                    AS l(execution_id, task_run_id, attempt, level, at, message, ord)),
            ins AS (
                INSERT INTO logs (execution_id, task_run_id, attempt, level, at, message)
                SELECT u.execution_id, u.task_run_id, u.attempt, u.level, u.at, u.message
                FROM u WHERE u.known ORDER BY u.ord)
            SELECT DISTINCT 'log', u.execution_id, NULL::text, NULL::bigint
            FROM u WHERE NOT u.known;
    END IF;

    IF cardinality(s_namespace) > 0 THEN
        INSERT INTO trigger_states AS s (namespace, flow_id, trigger_id, cursor,
            last_event_at, status, last_error, updated_at)
        SELECT u.namespace, u.flow_id, u.trigger_id, u.cursor::jsonb, u.last_event_at,
               u.status, u.last_error, now()
        FROM unnest(s_namespace, s_flow_id, s_trigger_id, s_cursor, s_last_event_at,
                    s_status, s_last_error, s_lease)
             AS u(namespace, flow_id, trigger_id, cursor, last_event_at, status,
                  last_error, lease)
        WHERE u.lease IS NULL OR u.lease <> ALL (stale)
        ON CONFLICT (namespace, flow_id, trigger_id) DO UPDATE
        SET cursor = excluded.cursor, last_event_at = excluded.last_event_at,
            status = excluded.status, last_error = excluded.last_error,
            updated_at = now();
    END IF;

    -- Releases come last: after the writes made under them.
    IF cardinality(e_kind) > 0 THEN
        RETURN QUERY
            WITH done AS (
                UPDATE leases AS l SET expires_at = least(l.expires_at, now()), released = true
                FROM unnest(e_kind, e_key, e_owner, e_epoch) WITH ORDINALITY
                     AS u(kind, key, owner, epoch, i)
                WHERE l.kind = u.kind AND l.key = u.key AND l.owner = u.owner
                  AND l.epoch = u.epoch
                RETURNING u.i)
            SELECT 'unreleased', u.i::text, NULL::text, NULL::bigint
            FROM unnest(e_kind) WITH ORDINALITY AS u(kind, i)
            WHERE NOT EXISTS (SELECT 1 FROM done WHERE done.i = u.i);
    END IF;
END
$fn$;
