-- The reconciler's history (DESIGN.md §6): one row per channel per run, so drift rate over
-- time can be shown, and one row per repair it pushed. Written by `onhand reconcile`, which
-- applies the ledger's migrations at start; the ledger itself never reads these tables.

CREATE TABLE reconcile_runs (
    id             uuid PRIMARY KEY,
    channel        text             NOT NULL,
    kind           text             NOT NULL,
    started_at     timestamptz      NOT NULL,
    finished_at    timestamptz,
    -- running: not finished (or the process died); partial: the read-back or a lookup
    -- failed, so the counts cover only what was compared.
    status         text             NOT NULL CHECK (status IN ('running', 'complete', 'partial')),
    error          text,
    repair         boolean          NOT NULL,
    settle_secs    bigint           NOT NULL,
    threshold      double precision NOT NULL,
    ledger_skus    bigint,
    channel_items  bigint,
    compared       bigint,
    matched        bigint,
    in_flight      bigint,
    drift          bigint,
    missing        bigint,
    unknown        bigint,          -- NULL when the read-back cannot tell (by-SKU reads)
    not_read       bigint,
    drift_rate     double precision,
    read_pages     bigint,
    repaired       bigint,
    repair_failed  bigint,
    exit_code      smallint
);
CREATE INDEX reconcile_runs_channel_started ON reconcile_runs (channel, started_at DESC);

CREATE TABLE reconcile_repairs (
    run_id       uuid        NOT NULL REFERENCES reconcile_runs (id) ON DELETE CASCADE,
    sku          text        NOT NULL,
    verdict      text        NOT NULL CHECK (verdict IN ('drift', 'missing')),
    version      bigint      NOT NULL,   -- the ledger version the pushed quantity is from
    channel_qty  bigint,                 -- what the channel showed (NULL: not listed)
    expected     bigint      NOT NULL,   -- what was pushed
    outcome      text        NOT NULL CHECK (outcome IN ('repaired', 'superseded', 'failed')),
    message      text,
    repaired_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, sku)
);
