-- Close-period export: invoices reported in {period} (SPEC §6), with their own amount and currency.
SELECT Actg_Period, fmt_text(Sales_Order_Id) AS Sales_Order_Id, fmt_text(Sales_Order_Item_Id) AS Sales_Order_Item_Id,
       fmt_text(Invoice_Number) AS Invoice_Number,
       fmt_text(BS_CustomField02) AS BS_CustomField02, fmt_text(BS_CustomField03) AS BS_CustomField03,
       fmt_text(BS_CustomField04) AS BS_CustomField04, fmt_text(BS_CustomField05) AS BS_CustomField05,
       fmt_text(BS_CustomField06) AS BS_CustomField06, fmt_text(BS_CustomField07) AS BS_CustomField07,
       fmt_text(BS_CustomField08) AS BS_CustomField08, fmt_text(BS_CustomField09) AS BS_CustomField09,
       fmt_text(BS_CustomField10) AS BS_CustomField10,
       Billing_Date, fmt_money(Billing_Amount) AS Billing_Amount, Currency
FROM {source}
WHERE Actg_Period = {period} AND Billing_Amount <> 0
ORDER BY {source}.Actg_Period, {source}.Sales_Order_Id, {source}.Sales_Order_Item_Id, {source}.Invoice_Number, {source}.Invoice_Line
