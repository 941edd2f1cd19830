-- Journal posting state (SPEC §5): one row per entry sent (or to be sent) to a target, with its items.
CREATE TABLE IF NOT EXISTS posting_entries (
    entry_key        VARCHAR PRIMARY KEY,  -- target|period|subsidiary|sequence|content hash
    target           VARCHAR NOT NULL,     -- rillet | intacct
    period           INTEGER NOT NULL,
    subsidiary_id    VARCHAR,              -- our Subsidiary_Id; NULL = the default (top-level) entity
    sequence         INTEGER NOT NULL,     -- 0 = the close's entry, n = adjustment n after a reopen
    name             VARCHAR NOT NULL,
    entry_date       DATE NOT NULL,
    currency         VARCHAR NOT NULL,
    target_entity_id VARCHAR,              -- Rillet subsidiary id / Intacct location id
    idempotency_key  VARCHAR NOT NULL,     -- Rillet Idempotency-Key and Intacct function controlid
    total_debit      BIGINT NOT NULL,
    total_credit     BIGINT NOT NULL,
    status           VARCHAR NOT NULL,     -- Pending | Success | Failed | Superseded
    target_id        VARCHAR,              -- the target's id once Success
    error            VARCHAR,              -- the target's words when Failed
    ambiguous        BOOLEAN NOT NULL DEFAULT false,  -- the target may have created it: look up before re-sending
    attempts         INTEGER NOT NULL DEFAULT 0,
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL,
    posted_at        TIMESTAMP
);

CREATE TABLE IF NOT EXISTS posting_items (
    entry_key     VARCHAR NOT NULL,
    line_no       INTEGER NOT NULL,
    account_id    VARCHAR NOT NULL,
    class_id      VARCHAR,
    location_id   VARCHAR,
    department_id VARCHAR,
    net_debit     BIGINT NOT NULL,         -- > 0 debit, < 0 credit
    description   VARCHAR NOT NULL
);
