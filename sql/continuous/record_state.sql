-- Record what version {version} carried, per (type, line), in the transaction that records the run: the
-- (type, line) rows it carried replace the earlier ones (one row per key; the table has no index to keep up).
-- The earlier rows are deleted by the rowids the change test read them at (ce_changes.state_row; the run
-- holds one transaction from those reads to this one's end): no scan of the whole state, which holds a row
-- per line and type ever exported (a DELETE joined on the keys took 0.2–0.3 s at a million lines).
DELETE FROM continuous_export_state
WHERE rowid IN (SELECT state_row FROM ce_changes WHERE state_row IS NOT NULL);

INSERT INTO continuous_export_state
SELECT export_type, Sales_Order_Item_Id, Sales_Order_Id, {version}, content_hash, tombstone FROM ce_changes;
