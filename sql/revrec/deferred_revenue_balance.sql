-- deferred_revenue_balance: ending unearned revenue per line and period, line currency.
CREATE OR REPLACE VIEW deferred_revenue_balance AS
SELECT Actg_Period, Reference_Invoice_Number, Sales_Order_Id, Sales_Order_Item_Id, Product_Code, Product_Name,
       Contract_Date, Currency, Customer_Id AS Current_Customer_Id, money(Ending_Unearned_Revenue) AS Ending_Unearned_Revenue
FROM line_periods;
