-- Export rows (close-period and continuous exports, SPEC §6): deferred_revenue_balance (SPEC §6), line currency.
SELECT Actg_Period, fmt_text(Reference_Invoice_Number) AS Reference_Invoice_Number, fmt_text(Sales_Order_Id) AS Sales_Order_Id,
       fmt_text(Sales_Order_Item_Id) AS Sales_Order_Item_Id, fmt_text(Product_Code) AS Product_Code,
       fmt_text(Product_Name) AS Product_Name, Contract_Date, Currency, fmt_text(Customer_Id) AS Current_Customer_Id,
       fmt_cents(Ending_Unearned_Revenue) AS Ending_Unearned_Revenue,
       -- raw keys: the item (for continuous exports) and the sort order, dropped from the file; _h: a checksum
       -- of the row's values before formatting (the continuous export's change test, without formatting)
       hash(src.Actg_Period, src.Reference_Invoice_Number, src.Sales_Order_Id, src.Sales_Order_Item_Id,
           src.Product_Code, src.Product_Name, src.Contract_Date, src.Currency, src.Customer_Id,
           src.Ending_Unearned_Revenue) AS _h,
       src.Sales_Order_Item_Id AS _item, src.Actg_Period AS _s0, {order_key}, NULL AS _s3
FROM {source} AS src
WHERE {rows} AND Ending_Unearned_Revenue <> 0
