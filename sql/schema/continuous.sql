-- Continuous export state (SPEC §6): one row per written version, and per (type, item) what was last exported.
CREATE TABLE IF NOT EXISTS continuous_export_runs (
    version        INTEGER PRIMARY KEY,      -- 1, 2, … ; files continuousexport-<type>-<version:06d>.csv
    exported_at    TIMESTAMP NOT NULL,
    export_timestamp VARCHAR NOT NULL,       -- as written in the control file (UTC, ISO 8601)
    closed_period  INTEGER,                  -- the last closed period at the export
    items          BIGINT NOT NULL,          -- (type, item) pairs written, tombstones included
    files          VARCHAR NOT NULL,         -- JSON list of the files written
    destination    VARCHAR NOT NULL
);

-- What the inputs looked like at the last run (written or not): changes are looked for after it.
CREATE TABLE IF NOT EXISTS continuous_export_watermark (
    id             INTEGER PRIMARY KEY,      -- always 1
    last_batch_id  BIGINT NOT NULL,          -- import or Rillet batches up to this one were seen
    close_events   BIGINT NOT NULL,          -- close_audit events (closes, reopens) seen
    updated_at     TIMESTAMP NOT NULL
);
-- How continuous_export_state's checksums were computed (lib/continuous.py HASH_SCHEME): a run that finds
-- another scheme (or none: warehouses from before it was recorded) compares every line, once.
ALTER TABLE continuous_export_watermark ADD COLUMN IF NOT EXISTS hash_scheme INTEGER;

CREATE TABLE IF NOT EXISTS continuous_export_state (
    export_type          VARCHAR NOT NULL,
    Sales_Order_Item_Id  VARCHAR NOT NULL,
    Sales_Order_Id       VARCHAR,
    version              INTEGER NOT NULL,   -- the version that last carried this item's rows of this type
    content_hash         HUGEINT NOT NULL,   -- checksum of the rows as exported (0 for a tombstone)
    tombstone            BOOLEAN NOT NULL
    -- one row per (export_type, Sales_Order_Item_Id), kept so by sql/continuous/record_state.sql; no PRIMARY KEY:
    -- keeping a unique index over every exported line up to date cost more than the rest of a change-sized
    -- export (BENCHMARKS.md). Warehouses created with the key are rebuilt without it (lib/warehouse.py).
);

-- fmt_money (sql/schema/revrec.sql) for the export files, written the fast way: a DECIMAL(18,2) prints
-- money with exactly 2 decimals natively, about ten times cheaper than fmt_money's text arithmetic on a
-- HUGEINT (the type line_periods' amounts have); amounts beyond 18 digits fall back to fmt_money. Equal
-- to fmt_money for every value (revrec_pipelines_tests/test_continuous.py checks the edges).
CREATE OR REPLACE MACRO fmt_cents(c) AS (
    CASE WHEN c BETWEEN -999999999999999999 AND 999999999999999999
         THEN CAST(CAST(CAST(c AS BIGINT) AS DECIMAL(18,0)) * 0.01 AS DECIMAL(18,2))::VARCHAR
         ELSE fmt_money(c) END);
