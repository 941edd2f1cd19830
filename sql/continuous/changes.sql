-- The candidate lines whose {export_type} rows really changed since they were last exported (a different
-- checksum, or never exported), and those whose rows vanished (a tombstone, unless one was already sent).
-- The state rows compared: the candidates' (or every line's, after closes, for the types they change).
-- The checksum sums the export query's row checksums (_h, of each row's values before formatting: the values
-- fix the written text), so the pass reads only the columns it needs and formats nothing. state_row: the
-- rowid of the item's state row (none for an item never exported), which sql/continuous/record_state.sql
-- replaces; the run reads and records in one transaction, so the rowid still names that row then.
INSERT INTO ce_changes
WITH now AS (
    SELECT _item AS Sales_Order_Item_Id, any_value(_s1) AS Sales_Order_Id,
           sum(CAST(_h AS HUGEINT)) AS content_hash
    FROM ({rows}) r GROUP BY ALL
),
before AS (
    SELECT rowid AS state_row, * FROM continuous_export_state
    WHERE export_type = '{export_type}' AND {compared}
)
SELECT '{export_type}', n.Sales_Order_Item_Id, n.Sales_Order_Id, n.content_hash, false, b.state_row
FROM now n LEFT JOIN before b USING (Sales_Order_Item_Id)
WHERE b.Sales_Order_Item_Id IS NULL OR b.tombstone OR b.content_hash <> n.content_hash
UNION ALL
SELECT '{export_type}', b.Sales_Order_Item_Id, b.Sales_Order_Id, 0, true, b.state_row
FROM before b
WHERE NOT b.tombstone
  AND b.Sales_Order_Item_Id NOT IN (SELECT Sales_Order_Item_Id FROM now);
