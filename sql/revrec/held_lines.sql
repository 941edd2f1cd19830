-- held_lines: contract lines that cannot be converted because a rate is missing (SPEC §4 Home currency).
-- A held line is left out of journals and every export, and no period can close while one exists.
CREATE OR REPLACE TABLE held_lines AS
SELECT l.Sales_Order_Id, l.Sales_Order_Item_Id, l.Currency AS From_Currency, '{home}' AS To_Currency,
       l.Order_Date AS Rate_Needed_On,
       'no ' || l.Currency || '→{home} rate on or before ' || CAST(l.Order_Date AS VARCHAR)
           || ' (the order date) to convert the line to the home currency: import an exchange rate for '
           || l.Currency || '/{home}' AS Reason
FROM order_lines l
LEFT JOIN rate_answers r ON r.from_currency = l.Currency AND r.to_currency = '{home}' AND r.rate_date = l.Order_Date
WHERE l.Currency <> '{home}' AND r.num IS NULL
UNION ALL
SELECT e.Sales_Order_Id, e.Sales_Order_Item_Id, e.Invoice_Currency, e.Line_Currency,
       CASE WHEN e.missing_invoice_date_rate THEN e.Billing_Date ELSE e.Order_Date END,
       'invoice ' || e.Invoice_Number || ' line ' || e.Invoice_Line || ' is in ' || e.Invoice_Currency
           || ' but its order line is in ' || e.Line_Currency || ': no ' || e.Invoice_Currency || '→' || e.Line_Currency
           || ' rate on or before ' || CAST(CASE WHEN e.missing_invoice_date_rate THEN e.Billing_Date ELSE e.Order_Date END AS VARCHAR)
           || CASE WHEN e.missing_invoice_date_rate THEN ' (the invoice date)' ELSE ' (the order date)' END
FROM invoice_events e
WHERE e.missing_invoice_date_rate OR e.missing_order_date_rate;
