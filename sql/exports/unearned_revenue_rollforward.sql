-- Export rows (close-period and continuous exports, SPEC §6): unearned_revenue_rollforward (SPEC §6), line currency.
SELECT Actg_Period, fmt_text(Reference_Invoice_Number) AS Reference_Invoice_Number, fmt_text(Sales_Order_Id) AS Sales_Order_Id,
       fmt_text(Sales_Order_Item_Id) AS Sales_Order_Item_Id, fmt_text(Product_Code) AS Product_Code,
       fmt_text(Product_Name) AS Product_Name, Contract_Date, Currency, fmt_text(Customer_Id) AS Current_Customer_Id,
       fmt_cents(Beginning_Unearned_Revenue) AS Beginning_Unearned_Revenue, fmt_cents(Booking_Amount) AS Booking_Amount,
       fmt_cents(New_Billing) AS New_Billing, fmt_cents(Revenue) AS Revenue,
       fmt_cents(Foreign_Currency_Change) AS Foreign_Currency_Change,
       fmt_cents(Adjustment_To_Unearned_Revenue) AS Adjustment_To_Unearned_Revenue,
       fmt_cents(Ending_Unearned_Revenue) AS Ending_Unearned_Revenue,
       fmt_cents(Beginning_Unbilled_Receivable) AS Beginning_Unbilled_Receivable,
       fmt_cents(Ending_Unbilled_Receivable) AS Ending_Unbilled_Receivable,
       -- raw keys: the item (for continuous exports) and the sort order, dropped from the file; _h: a checksum
       -- of the row's values before formatting (the continuous export's change test, without formatting)
       hash(src.Actg_Period, src.Reference_Invoice_Number, src.Sales_Order_Id, src.Sales_Order_Item_Id,
           src.Product_Code, src.Product_Name, src.Contract_Date, src.Currency, src.Customer_Id,
           src.Beginning_Unearned_Revenue, src.Booking_Amount, src.New_Billing, src.Revenue, src.Foreign_Currency_Change,
           src.Adjustment_To_Unearned_Revenue, src.Ending_Unearned_Revenue, src.Beginning_Unbilled_Receivable,
           src.Ending_Unbilled_Receivable) AS _h,
       src.Sales_Order_Item_Id AS _item, src.Actg_Period AS _s0, {order_key}, NULL AS _s3
FROM {source} AS src
WHERE {rows}
  AND (Beginning_Unearned_Revenue <> 0 OR New_Billing <> 0 OR Revenue <> 0 OR Foreign_Currency_Change <> 0
       OR Adjustment_To_Unearned_Revenue <> 0 OR Ending_Unearned_Revenue <> 0
       OR Beginning_Unbilled_Receivable <> 0 OR Ending_Unbilled_Receivable <> 0)
