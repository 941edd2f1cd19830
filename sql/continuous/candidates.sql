-- Contract lines whose exported rows may have changed since the last continuous export (SPEC §6): found
-- from what changed in the inputs — batches after {last_batch_id} of lines, invoices, usage, commissions,
-- rates, products, customers, mappings — and, when {everything} is true (first run, a close or reopen,
-- or a mapping change), every line. A hash of each candidate's rows then confirms a real change.
CREATE OR REPLACE TEMP TABLE ce_candidates AS
WITH changed_rates AS (
    SELECT DISTINCT From_Currency AS c FROM raw_exchange_rates WHERE _batch_id > {last_batch_id}
    UNION SELECT DISTINCT To_Currency FROM raw_exchange_rates WHERE _batch_id > {last_batch_id}
),
touched AS (
    SELECT Sales_Order_Item_Id FROM order_lines WHERE {everything}
    UNION SELECT Sales_Order_Item_Id FROM raw_sales_orders WHERE _batch_id > {last_batch_id}
    -- a line's allocation moves with the other lines of its order
    UNION SELECT l.Sales_Order_Item_Id FROM order_lines l
          JOIN (SELECT DISTINCT Sales_Order_Id FROM raw_sales_orders WHERE _batch_id > {last_batch_id}) o USING (Sales_Order_Id)
    UNION SELECT coalesce(Sales_Order_Item_Id, Invoice_Number || '-' || Invoice_Line) FROM raw_invoices WHERE _batch_id > {last_batch_id}
    UNION SELECT Sales_Order_Item_Id FROM raw_usage WHERE _batch_id > {last_batch_id}
    UNION SELECT Sales_Order_Item_Id FROM raw_commissions WHERE _batch_id > {last_batch_id}
    UNION SELECT l.Sales_Order_Item_Id FROM order_lines l
          JOIN (SELECT DISTINCT Product_Id FROM raw_products WHERE _batch_id > {last_batch_id}) p USING (Product_Id)
    UNION SELECT l.Sales_Order_Item_Id FROM order_lines l
          JOIN (SELECT DISTINCT Customer_Id FROM raw_customers WHERE _batch_id > {last_batch_id}) c USING (Customer_Id)
    UNION SELECT l.Sales_Order_Item_Id FROM order_lines l WHERE l.Currency IN (SELECT c FROM changed_rates)
    UNION SELECT Sales_Order_Item_Id FROM invoice_events WHERE Invoice_Currency IN (SELECT c FROM changed_rates)
    -- lines exported before that are no longer contract lines get their tombstones
    UNION SELECT s.Sales_Order_Item_Id FROM continuous_export_state s
          WHERE NOT s.tombstone AND NOT EXISTS (SELECT 1 FROM order_lines l WHERE l.Sales_Order_Item_Id = s.Sales_Order_Item_Id)
)
SELECT DISTINCT Sales_Order_Item_Id FROM touched WHERE Sales_Order_Item_Id IS NOT NULL;
