-- Contract lines whose exported rows may have changed since the last continuous export (SPEC §6): found
-- from what changed in the inputs — versions written or superseded by batches after {last_batch_id} of
-- lines, invoices, usage, commissions, rates, products, customers — and, when {everything} is true (first
-- run, a close or reopen, a mapping change, or checksums of an earlier scheme), every line. A hash of each
-- candidate's rows then confirms a real change. A superseded version names what a row pointed at before (an
-- invoice moved to another line, a line moved to another order): that line changed too.
CREATE OR REPLACE TEMP TABLE ce_candidates AS
WITH changed_orders AS (
    SELECT DISTINCT Sales_Order_Id FROM raw_sales_orders
    WHERE _batch_id > {last_batch_id} OR _superseded_by_batch > {last_batch_id}
),
-- A rate quote (F, T, D) can change a conversion X → Y (X ≠ Y) on a date d only if d ≥ D and F or T is
-- whichever of X and Y is not the home currency {home}: each quote the rule reads (SPEC §4 Rates: direct,
-- inverse, or the two legs through the home currency) names one. Per such currency, the earliest date
-- from which a changed quote can matter.
changed_rates AS (
    SELECT currency, min(Rate_Date) AS since
    FROM (SELECT From_Currency AS currency, Rate_Date FROM raw_exchange_rates
          WHERE _batch_id > {last_batch_id} OR _superseded_by_batch > {last_batch_id}
          UNION ALL
          SELECT To_Currency, Rate_Date FROM raw_exchange_rates
          WHERE _batch_id > {last_batch_id} OR _superseded_by_batch > {last_batch_id})
    WHERE currency IS DISTINCT FROM '{home}'
    GROUP BY currency
),
-- The lines whose conversions such a quote can change: line → home on the Order_Date, and an invoice in
-- another currency than its line's → the line's on the invoice date and on the Order_Date.
rate_touched AS (
    SELECT l.Sales_Order_Item_Id
    FROM changed_rates r JOIN order_lines l ON l.Currency = r.currency AND l.Order_Date >= r.since
    UNION ALL
    SELECT e.Sales_Order_Item_Id
    FROM invoice_events e
    JOIN changed_rates r ON r.currency IN (e.Invoice_Currency, e.Line_Currency)
                        AND (e.Billing_Date >= r.since OR e.Order_Date >= r.since)
    WHERE e.Invoice_Currency <> e.Line_Currency
),
touched AS (
    SELECT Sales_Order_Item_Id FROM order_lines WHERE {everything}
    UNION SELECT Sales_Order_Item_Id FROM raw_sales_orders
          WHERE _batch_id > {last_batch_id} OR _superseded_by_batch > {last_batch_id}
    -- a line's allocation and contract end move with the other lines of its order
    UNION SELECT l.Sales_Order_Item_Id FROM order_lines l JOIN changed_orders o USING (Sales_Order_Id)
    UNION SELECT coalesce(Sales_Order_Item_Id, Invoice_Number || '-' || Invoice_Line) FROM raw_invoices
          WHERE _batch_id > {last_batch_id} OR _superseded_by_batch > {last_batch_id}
    UNION SELECT Sales_Order_Item_Id FROM raw_usage
          WHERE _batch_id > {last_batch_id} OR _superseded_by_batch > {last_batch_id}
    UNION SELECT Sales_Order_Item_Id FROM raw_commissions
          WHERE _batch_id > {last_batch_id} OR _superseded_by_batch > {last_batch_id}
    UNION SELECT l.Sales_Order_Item_Id FROM order_lines l
          JOIN (SELECT DISTINCT Product_Id FROM raw_products WHERE _batch_id > {last_batch_id}) p USING (Product_Id)
    UNION SELECT l.Sales_Order_Item_Id FROM order_lines l
          JOIN (SELECT DISTINCT Customer_Id FROM raw_customers WHERE _batch_id > {last_batch_id}) c USING (Customer_Id)
    UNION SELECT Sales_Order_Item_Id FROM rate_touched
    -- lines exported before that are no longer contract lines get their tombstones. A line leaves order_lines
    -- only when the raw row that made it stops being current (superseded: an invoice-as-contract line whose
    -- invoice now names an order line), and that superseded version is a candidate above; so only a run
    -- over every line looks through the whole state for them (it scans a row per exported line and type).
    UNION SELECT s.Sales_Order_Item_Id FROM continuous_export_state s
          WHERE {everything} AND NOT s.tombstone
            AND NOT EXISTS (SELECT 1 FROM order_lines l WHERE l.Sales_Order_Item_Id = s.Sales_Order_Item_Id)
)
SELECT DISTINCT Sales_Order_Item_Id FROM touched WHERE Sales_Order_Item_Id IS NOT NULL;

-- The candidates' rows of line_periods come from its two parts (sql/revrec/line_periods.sql): the frozen
-- rows, and the open rows of line_period_lines' numbered lines, found by their line_no so that the filter
-- reaches the narrow line_period_amounts rather than the assembled view.
CREATE OR REPLACE TEMP TABLE ce_line_nos AS
SELECT line_no FROM line_period_lines
WHERE Sales_Order_Item_Id IN (SELECT Sales_Order_Item_Id FROM ce_candidates)
  AND Sales_Order_Item_Id NOT IN (SELECT Sales_Order_Item_Id FROM held_lines);
