-- Record what version {version} carried, per (type, line), in the transaction that records the run.
INSERT OR REPLACE INTO continuous_export_state
SELECT export_type, Sales_Order_Item_Id, Sales_Order_Id, {version}, content_hash, tombstone FROM ce_changes
