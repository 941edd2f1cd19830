-- Export rows (close-period and continuous exports, SPEC §6): invoices (SPEC §6), with their own amount and currency.
SELECT Actg_Period, fmt_text(Sales_Order_Id) AS Sales_Order_Id, fmt_text(Sales_Order_Item_Id) AS Sales_Order_Item_Id,
       fmt_text(Invoice_Number) AS Invoice_Number,
       fmt_text(BS_CustomField02) AS BS_CustomField02, fmt_text(BS_CustomField03) AS BS_CustomField03,
       fmt_text(BS_CustomField04) AS BS_CustomField04, fmt_text(BS_CustomField05) AS BS_CustomField05,
       fmt_text(BS_CustomField06) AS BS_CustomField06, fmt_text(BS_CustomField07) AS BS_CustomField07,
       fmt_text(BS_CustomField08) AS BS_CustomField08, fmt_text(BS_CustomField09) AS BS_CustomField09,
       fmt_text(BS_CustomField10) AS BS_CustomField10,
       Billing_Date, fmt_cents(Billing_Amount) AS Billing_Amount, Currency,
       -- raw keys: the item (for continuous exports) and the sort order, dropped from the file; _h: a checksum
       -- of the row's values before formatting (the continuous export's change test, without formatting)
       hash(src.Actg_Period, src.Sales_Order_Id, src.Sales_Order_Item_Id, src.Invoice_Number, src.BS_CustomField02,
           src.BS_CustomField03, src.BS_CustomField04, src.BS_CustomField05, src.BS_CustomField06, src.BS_CustomField07,
           src.BS_CustomField08, src.BS_CustomField09, src.BS_CustomField10, src.Billing_Date, src.Billing_Amount,
           src.Currency) AS _h,
       src.Sales_Order_Item_Id AS _item, src.Actg_Period AS _s0, {order_key}, src.Invoice_Number || chr(0) || src.Invoice_Line AS _s3
FROM {source} AS src
WHERE {rows} AND Billing_Amount <> 0
