-- invoice_events: each current invoice line on its contract line, in the line's currency (SPEC §4 Events).
-- An invoice in another currency converts at the invoice-date rate; Foreign_Currency_Change is
-- (amount at the Order_Date rate) − (amount at the invoice-date rate). Each conversion rounds once.
CREATE OR REPLACE TABLE invoice_events AS
WITH linked AS (
    SELECT i.Invoice_Number, i.Invoice_Line,
           coalesce(i.Sales_Order_Item_Id, i.Invoice_Number || '-' || i.Invoice_Line) AS Sales_Order_Item_Id,
           i.Billing_Date, i.Currency AS Invoice_Currency, cents(i.Billing_Amount) AS Billing_Amount,
           i.BS_CustomField02, i.BS_CustomField03, i.BS_CustomField04, i.BS_CustomField05, i.BS_CustomField06,
           i.BS_CustomField07, i.BS_CustomField08, i.BS_CustomField09, i.BS_CustomField10
    FROM raw_invoices i WHERE i._is_current
)
SELECT v.*, l.Sales_Order_Id, month_index(v.Billing_Date) AS mi, l.Currency AS Line_Currency,
       CASE WHEN v.Invoice_Currency = l.Currency THEN v.Billing_Amount
            ELSE CAST(rdiv(v.Billing_Amount * at_invoice.num, at_invoice.den) AS BIGINT) END AS New_Billing,
       CASE WHEN v.Invoice_Currency = l.Currency THEN 0
            ELSE CAST(rdiv(v.Billing_Amount * at_order.num, at_order.den)
                      - rdiv(v.Billing_Amount * at_invoice.num, at_invoice.den) AS BIGINT) END AS Foreign_Currency_Change,
       v.Invoice_Currency <> l.Currency AND at_invoice.num IS NULL AS missing_invoice_date_rate,
       v.Invoice_Currency <> l.Currency AND at_order.num IS NULL AS missing_order_date_rate,
       l.Order_Date
FROM linked v
JOIN order_lines l USING (Sales_Order_Item_Id)
LEFT JOIN rate_answers at_invoice
       ON at_invoice.from_currency = v.Invoice_Currency AND at_invoice.to_currency = l.Currency
      AND at_invoice.rate_date = v.Billing_Date
LEFT JOIN rate_answers at_order
       ON at_order.from_currency = v.Invoice_Currency AND at_order.to_currency = l.Currency
      AND at_order.rate_date = l.Order_Date;
