-- invoice_register: invoice lines by the period they are reported in (SPEC §6 invoices): the period of
-- their date, or the first open period for a late invoice; with their own amount and currency. An
-- invoice line already reported in a closed period and changed since reports the difference in O.
CREATE OR REPLACE TABLE invoice_register AS
WITH close_state AS (
    SELECT index_of_period(max(period)) + 1 AS open_mi FROM closed_periods
),
already_reported AS (
    SELECT Invoice_Number, Invoice_Line, sum(Billing_Amount) AS reported
    FROM frozen_invoice_register GROUP BY ALL
),
open_rows AS (
    SELECT period_of_index(CASE WHEN c.open_mi IS NULL THEN e.mi ELSE greatest(e.mi, c.open_mi) END) AS Actg_Period,
           e.Sales_Order_Id, e.Sales_Order_Item_Id, e.Invoice_Number, e.Invoice_Line,
           e.BS_CustomField02, e.BS_CustomField03, e.BS_CustomField04, e.BS_CustomField05, e.BS_CustomField06,
           e.BS_CustomField07, e.BS_CustomField08, e.BS_CustomField09, e.BS_CustomField10,
           e.Billing_Date, e.Billing_Amount - coalesce(r.reported, 0) AS Billing_Amount, e.Invoice_Currency AS Currency
    FROM invoice_events e
    CROSS JOIN close_state c
    LEFT JOIN already_reported r USING (Invoice_Number, Invoice_Line)
    WHERE e.Sales_Order_Item_Id NOT IN (SELECT Sales_Order_Item_Id FROM held_lines)
      AND (r.Invoice_Number IS NULL OR e.Billing_Amount <> r.reported)
)
SELECT * FROM frozen_invoice_register
UNION ALL BY NAME
SELECT * FROM open_rows;
