-- Raw Rillet objects (SPEC §3) and the incremental sync's bookkeeping. Written by lib/rillet_sync.py.
--
-- One table per Rillet object type, holding the latest version of every object Rillet has answered,
-- exactly as it answered it (`object`, JSON). The model's history lives in the raw_<type> tables the
-- objects are mapped into (their `_batch_id` is an import_batches row of source `rillet:<base url>`);
-- here a changed object replaces its earlier version.
--   id                 Rillet's id (uuid)
--   updated_at         the object's updated_at (NULL for types that have none: subsidiaries, products, contracts)
--   object             the object as JSON
--   _object_hash       md5 of the object's canonical JSON: an unchanged object is not written or re-mapped
--   _synced_at         when the sync that last changed this object committed
--   _sync_id           rillet_syncs.sync_id of that sync
--   _last_seen_sync_id the last sync that saw the object (for full-sync types, an object whose
--                      _last_seen_sync_id is older than the last sync was not listed any more: deleted?)
CREATE SEQUENCE IF NOT EXISTS rillet_sync_id_seq START 1;

CREATE TABLE IF NOT EXISTS rillet_accounts (
    id VARCHAR NOT NULL, updated_at TIMESTAMPTZ, object JSON NOT NULL, _object_hash VARCHAR NOT NULL,
    _synced_at TIMESTAMP NOT NULL, _sync_id BIGINT NOT NULL, _last_seen_sync_id BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS rillet_subsidiaries (
    id VARCHAR NOT NULL, updated_at TIMESTAMPTZ, object JSON NOT NULL, _object_hash VARCHAR NOT NULL,
    _synced_at TIMESTAMP NOT NULL, _sync_id BIGINT NOT NULL, _last_seen_sync_id BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS rillet_customers (
    id VARCHAR NOT NULL, updated_at TIMESTAMPTZ, object JSON NOT NULL, _object_hash VARCHAR NOT NULL,
    _synced_at TIMESTAMP NOT NULL, _sync_id BIGINT NOT NULL, _last_seen_sync_id BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS rillet_products (
    id VARCHAR NOT NULL, updated_at TIMESTAMPTZ, object JSON NOT NULL, _object_hash VARCHAR NOT NULL,
    _synced_at TIMESTAMP NOT NULL, _sync_id BIGINT NOT NULL, _last_seen_sync_id BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS rillet_contracts (
    id VARCHAR NOT NULL, updated_at TIMESTAMPTZ, object JSON NOT NULL, _object_hash VARCHAR NOT NULL,
    _synced_at TIMESTAMP NOT NULL, _sync_id BIGINT NOT NULL, _last_seen_sync_id BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS rillet_invoices (
    id VARCHAR NOT NULL, updated_at TIMESTAMPTZ, object JSON NOT NULL, _object_hash VARCHAR NOT NULL,
    _synced_at TIMESTAMP NOT NULL, _sync_id BIGINT NOT NULL, _last_seen_sync_id BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS rillet_credit_memos (
    id VARCHAR NOT NULL, updated_at TIMESTAMPTZ, object JSON NOT NULL, _object_hash VARCHAR NOT NULL,
    _synced_at TIMESTAMP NOT NULL, _sync_id BIGINT NOT NULL, _last_seen_sync_id BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS rillet_invoice_payments (
    id VARCHAR NOT NULL, updated_at TIMESTAMPTZ, object JSON NOT NULL, _object_hash VARCHAR NOT NULL,
    _synced_at TIMESTAMP NOT NULL, _sync_id BIGINT NOT NULL, _last_seen_sync_id BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS rillet_fields (
    id VARCHAR NOT NULL, updated_at TIMESTAMPTZ, object JSON NOT NULL, _object_hash VARCHAR NOT NULL,
    _synced_at TIMESTAMP NOT NULL, _sync_id BIGINT NOT NULL, _last_seen_sync_id BIGINT NOT NULL
);

-- The incremental cursor, per endpoint. Written only by a successful sync, in the same transaction as
-- the objects it read: a failed sync leaves it where it was, so the next sync reads the same objects again.
CREATE TABLE IF NOT EXISTS rillet_sync_state (
    endpoint          VARCHAR NOT NULL,   -- /customers, /invoices, ...
    base_url          VARCHAR NOT NULL,   -- the Rillet the cursor belongs to (another base URL starts over)
    incremental       BOOLEAN NOT NULL,   -- the endpoint takes updated.gt; false: synced in full every time
    last_updated_at   VARCHAR,            -- the greatest updated_at read so far (ISO 8601 UTC, as Rillet wrote it)
    last_success_at   TIMESTAMP NOT NULL, -- when the last successful sync committed
    last_sync_id      BIGINT NOT NULL,
    last_complete     BOOLEAN NOT NULL,   -- false: Rillet repeated a cursor, the listing stopped early and
                                          -- last_updated_at was not advanced past what it had before
    objects_read      BIGINT NOT NULL,    -- objects the last sync read from the endpoint
    objects_changed   BIGINT NOT NULL     -- of which new or different from the stored version
);

-- One row per successful sync.
CREATE TABLE IF NOT EXISTS rillet_syncs (
    sync_id        BIGINT NOT NULL,
    run_id         VARCHAR,
    base_url       VARCHAR NOT NULL,
    full_resync    BOOLEAN NOT NULL,
    started_at     TIMESTAMP NOT NULL,
    finished_at    TIMESTAMP NOT NULL,
    objects_read   BIGINT NOT NULL,
    objects_changed BIGINT NOT NULL,
    rows_new       BIGINT NOT NULL,
    rows_changed   BIGINT NOT NULL,
    warnings       VARCHAR            -- newline-separated
);
