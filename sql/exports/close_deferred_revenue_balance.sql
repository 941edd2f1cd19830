-- Close-period export: deferred_revenue_balance of {period} (SPEC §6), line currency.
SELECT Actg_Period, fmt_text(Reference_Invoice_Number) AS Reference_Invoice_Number, fmt_text(Sales_Order_Id) AS Sales_Order_Id,
       fmt_text(Sales_Order_Item_Id) AS Sales_Order_Item_Id, fmt_text(Product_Code) AS Product_Code,
       fmt_text(Product_Name) AS Product_Name, Contract_Date, Currency, fmt_text(Customer_Id) AS Current_Customer_Id,
       fmt_money(Ending_Unearned_Revenue) AS Ending_Unearned_Revenue
FROM {source}
WHERE Actg_Period = {period} AND Ending_Unearned_Revenue <> 0
ORDER BY {source}.Actg_Period, {source}.Sales_Order_Id, {source}.Sales_Order_Item_Id
