-- Upsert a staged unit into {table} by key, keeping earlier versions (SPEC §2 "Upsert by key with history").
-- A row identical to the current version of its key is not written at all, so re-importing changes nothing.
CREATE OR REPLACE TEMP TABLE stage_classified AS
SELECT s.*,
       CASE WHEN c._row_hash IS NULL THEN 'new'
            WHEN c._row_hash = s._row_hash THEN 'unchanged'
            ELSE 'changed' END AS _change
FROM stage s
LEFT JOIN {table} c ON c._is_current AND {key_join_c};

UPDATE {table} t
SET _is_current = false, _superseded_by_batch = {batch_id}
FROM stage_classified s
WHERE t._is_current AND s._change = 'changed' AND {key_join_t};

INSERT INTO {table} ({columns}, _extra, _row_number, _row_hash, _batch_id, _is_current, _superseded_by_batch, _source, _loaded_at)
SELECT {columns}, _extra, _row_number, _row_hash, {batch_id}, true, NULL, '{source_kind}', current_timestamp
FROM stage_classified
WHERE _change <> 'unchanged';
