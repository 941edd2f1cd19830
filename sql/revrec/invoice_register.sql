-- invoice_register: invoice lines by the period they are reported in (SPEC §6 invoices): the period of
-- their date, or the first open period for a late invoice; with their own amount and currency. An
-- invoice line already reported in a closed period and changed since reports the difference in O; one that
-- moved to another line or currency is reversed there and reported anew.
CREATE OR REPLACE TABLE invoice_register AS
WITH close_state AS (
    SELECT index_of_period(max(period)) + 1 AS open_mi FROM closed_periods
),
-- what closed periods reported, per invoice line, contract line and currency
already_reported AS (
    SELECT Invoice_Number, Invoice_Line, Sales_Order_Item_Id, Currency, sum(Billing_Amount) AS reported,
           arg_max(COLUMNS(* EXCLUDE (Invoice_Number, Invoice_Line, Sales_Order_Item_Id, Currency, Billing_Amount, Actg_Period)), Actg_Period)
    FROM frozen_invoice_register GROUP BY Invoice_Number, Invoice_Line, Sales_Order_Item_Id, Currency
),
current_lines AS (
    SELECT * FROM invoice_events WHERE Sales_Order_Item_Id NOT IN (SELECT Sales_Order_Item_Id FROM held_lines)
),
open_rows AS (
    SELECT period_of_index(CASE WHEN c.open_mi IS NULL THEN e.mi ELSE greatest(e.mi, c.open_mi) END) AS Actg_Period,
           e.Sales_Order_Id, e.Sales_Order_Item_Id, e.Invoice_Number, e.Invoice_Line,
           e.BS_CustomField02, e.BS_CustomField03, e.BS_CustomField04, e.BS_CustomField05, e.BS_CustomField06,
           e.BS_CustomField07, e.BS_CustomField08, e.BS_CustomField09, e.BS_CustomField10,
           e.Billing_Date, e.Billing_Amount - coalesce(r.reported, 0) AS Billing_Amount, e.Invoice_Currency AS Currency
    FROM current_lines e
    CROSS JOIN close_state c
    LEFT JOIN already_reported r
           ON r.Invoice_Number = e.Invoice_Number AND r.Invoice_Line = e.Invoice_Line
          AND r.Sales_Order_Item_Id = e.Sales_Order_Item_Id AND r.Currency = e.Invoice_Currency
    WHERE r.Invoice_Number IS NULL OR e.Billing_Amount <> r.reported
    UNION ALL
    -- reported before on another line or in another currency: reversed in the first open period
    SELECT period_of_index(c.open_mi), r.Sales_Order_Id, r.Sales_Order_Item_Id, r.Invoice_Number, r.Invoice_Line,
           r.BS_CustomField02, r.BS_CustomField03, r.BS_CustomField04, r.BS_CustomField05, r.BS_CustomField06,
           r.BS_CustomField07, r.BS_CustomField08, r.BS_CustomField09, r.BS_CustomField10,
           r.Billing_Date, -r.reported, r.Currency
    FROM already_reported r
    CROSS JOIN close_state c
    WHERE r.reported <> 0
      AND r.Sales_Order_Item_Id NOT IN (SELECT Sales_Order_Item_Id FROM held_lines)
      AND NOT EXISTS (SELECT 1 FROM current_lines e
                      WHERE e.Invoice_Number = r.Invoice_Number AND e.Invoice_Line = r.Invoice_Line
                        AND e.Sales_Order_Item_Id = r.Sales_Order_Item_Id AND e.Invoice_Currency = r.Currency)
)
SELECT * FROM frozen_invoice_register
UNION ALL BY NAME
SELECT * FROM open_rows;
