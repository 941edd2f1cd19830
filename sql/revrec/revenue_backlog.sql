-- revenue_backlog: remaining performance obligations (RPO) per non-usage line and period, line currency.
CREATE OR REPLACE VIEW revenue_backlog AS
SELECT Actg_Period, Sales_Order_Id, Sales_Order_Item_Id, Product_Code, Currency,
       money(Beginning_Backlog) AS Beginning_Backlog, money(New_Booking) AS New_Booking,
       money(Revenue) AS Total_Revenue, money(Ending_Backlog) AS Ending_Backlog
FROM line_periods WHERE Ending_Backlog IS NOT NULL;
