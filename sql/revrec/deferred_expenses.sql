-- deferred_expenses: deferred commission expense per line and period, line currency.
CREATE OR REPLACE VIEW deferred_expenses AS
SELECT Actg_Period, Sales_Order_Id, Sales_Order_Item_Id, Product_Id, Currency,
       money(Beginning_Deferred_Expense) AS Beginning_Deferred_Expense, money(New_Commissions) AS New_Commissions,
       money(Commission_Amortization) AS Commission_Amortization, money(Ending_Deferred_Expense) AS Ending_Deferred_Expense
FROM line_periods;
