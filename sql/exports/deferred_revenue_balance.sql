-- Export rows (close-period and continuous exports, SPEC §6): deferred_revenue_balance (SPEC §6), line currency.
SELECT Actg_Period, fmt_text(Reference_Invoice_Number) AS Reference_Invoice_Number, fmt_text(Sales_Order_Id) AS Sales_Order_Id,
       fmt_text(Sales_Order_Item_Id) AS Sales_Order_Item_Id, fmt_text(Product_Code) AS Product_Code,
       fmt_text(Product_Name) AS Product_Name, Contract_Date, Currency, fmt_text(Customer_Id) AS Current_Customer_Id,
       fmt_money(Ending_Unearned_Revenue) AS Ending_Unearned_Revenue
FROM {source} AS src
WHERE {rows} AND Ending_Unearned_Revenue <> 0
ORDER BY src.Actg_Period, src.Sales_Order_Id, src.Sales_Order_Item_Id
