-- Upsert the staged unit into {table} by key, keeping earlier versions (SPEC §2 "Upsert by key with history").
-- A row identical to the current version of its key is not written at all, so re-importing changes nothing.
-- Two set-based statements over the view `stage`; the importer counts the rows each one touches.

-- The current version of each key whose content changes (any typed value differs) is superseded by this batch.
UPDATE {table} t
SET _is_current = false, _superseded_by_batch = {batch_id}
FROM stage s
WHERE t._is_current AND {key_join_t} AND ({values_differ});

-- Each key left without a current version (new, or superseded just now) gets the unit's row.
INSERT INTO {table} ({columns}, _extra, _row_number, _batch_id, _is_current, _superseded_by_batch, _source, _loaded_at)
SELECT {columns}, _extra, _row_number, {batch_id}, true, NULL, '{source_kind}', current_timestamp
FROM stage s
WHERE NOT EXISTS (SELECT 1 FROM {table} c WHERE c._is_current AND {key_join_c});
