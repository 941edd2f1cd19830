-- revenue_waterfall: recognized revenue per line and period, line and home currency.
CREATE OR REPLACE VIEW revenue_waterfall AS
SELECT Actg_Period, Reference_Invoice_Number, Sales_Order_Id, Sales_Order_Item_Id, Product_Code, Product_Name,
       Contract_Date, Currency, Customer_Id AS Current_Customer_Id, Revenue_Rule,
       money(Revenue) AS Revenue, Home_Currency, money(Revenue_Home) AS Revenue_Home
FROM line_periods;
