-- unearned_revenue_rollforward: per line and period, line currency, as DECIMAL amounts (SPEC §6 columns).
CREATE OR REPLACE VIEW unearned_revenue_rollforward AS
SELECT Actg_Period, Reference_Invoice_Number, Sales_Order_Id, Sales_Order_Item_Id, Product_Code, Product_Name,
       Contract_Date, Currency, Customer_Id AS Current_Customer_Id,
       money(Beginning_Unearned_Revenue) AS Beginning_Unearned_Revenue, money(Booking_Amount) AS Booking_Amount,
       money(New_Billing) AS New_Billing, money(Revenue) AS Revenue, money(Foreign_Currency_Change) AS Foreign_Currency_Change,
       money(Adjustment_To_Unearned_Revenue) AS Adjustment_To_Unearned_Revenue,
       money(Ending_Unearned_Revenue) AS Ending_Unearned_Revenue,
       money(Beginning_Unbilled_Receivable) AS Beginning_Unbilled_Receivable,
       money(Ending_Unbilled_Receivable) AS Ending_Unbilled_Receivable
FROM line_periods;
