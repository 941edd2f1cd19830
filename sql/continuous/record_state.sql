-- Record what version {version} carried, per (type, line), in the transaction that records the run: the
-- (type, line) rows it carried replace the earlier ones (one row per key; the table has no index to keep up).
DELETE FROM continuous_export_state s
USING ce_changes c
WHERE s.export_type = c.export_type AND s.Sales_Order_Item_Id = c.Sales_Order_Item_Id;

INSERT INTO continuous_export_state
SELECT export_type, Sales_Order_Item_Id, Sales_Order_Id, {version}, content_hash, tombstone FROM ce_changes;
