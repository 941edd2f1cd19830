-- Import bookkeeping (SPEC §2 Import semantics): one row per file seen, per batch, per rejected value.
CREATE SEQUENCE IF NOT EXISTS batch_id_seq START 1;

-- The incremental ledger: which version of which file was imported (or rejected) as which batch.
CREATE TABLE IF NOT EXISTS import_ledger (
    source        VARCHAR NOT NULL,   -- e.g. file://./data/inbox, sftp://user@host:22/in, s3://bucket/prefix
    path          VARCHAR NOT NULL,   -- relative to the source root
    size          BIGINT  NOT NULL,
    version_tag   VARCHAR NOT NULL,   -- mtime:<seconds> or etag:<etag>
    sha256        VARCHAR NOT NULL,
    batch_id      BIGINT  NOT NULL,
    status        VARCHAR NOT NULL,   -- applied | unchanged | rejected
    recorded_at   TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- One batch per file (a CSV, a workbook, a ZIP), applied atomically or not at all.
CREATE TABLE IF NOT EXISTS import_batches (
    batch_id       BIGINT PRIMARY KEY,
    run_id         VARCHAR,
    source         VARCHAR NOT NULL,
    path           VARCHAR NOT NULL,
    sha256         VARCHAR NOT NULL,
    status         VARCHAR NOT NULL,  -- applied | unchanged | rejected
    units          INTEGER NOT NULL,
    rows_read      BIGINT  NOT NULL,
    rows_new       BIGINT  NOT NULL,  -- keys never seen before
    rows_changed   BIGINT  NOT NULL,  -- new versions of existing keys (earlier version kept)
    rows_unchanged BIGINT  NOT NULL,  -- identical to the current version: nothing written
    error_count    BIGINT  NOT NULL,
    message        VARCHAR,
    started_at     TIMESTAMP NOT NULL,
    finished_at    TIMESTAMP NOT NULL
);

-- Every problem of every rejected file: what, where and why.
CREATE TABLE IF NOT EXISTS import_errors (
    batch_id     BIGINT  NOT NULL,
    source       VARCHAR NOT NULL,
    path         VARCHAR NOT NULL,
    unit         VARCHAR NOT NULL,    -- the CSV, "book.xlsx#sheet" or "drop.zip/member.csv"
    row_number   BIGINT,              -- row in the file, the header being row 1 (NULL: the whole unit)
    column_name  VARCHAR,
    value        VARCHAR,
    reason       VARCHAR NOT NULL,
    recorded_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);
