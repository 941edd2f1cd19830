-- Close-period export: expenses (deferred commissions) of {period} (SPEC §6), line currency.
SELECT Actg_Period, fmt_text(Sales_Order_Id) AS Sales_Order_Id, fmt_text(Sales_Order_Item_Id) AS Sales_Order_Item_Id,
       fmt_text(Product_Id) AS Product_Id, fmt_money(Beginning_Deferred_Expense) AS Beginning_Deferred_Expense,
       fmt_money(New_Commissions) AS New_Commissions, fmt_money(Commission_Amortization) AS Commission_Amortization,
       fmt_money(Ending_Deferred_Expense) AS Ending_Deferred_Expense
FROM {source}
WHERE Actg_Period = {period}
  AND (Beginning_Deferred_Expense <> 0 OR New_Commissions <> 0 OR Commission_Amortization <> 0 OR Ending_Deferred_Expense <> 0)
ORDER BY {source}.Actg_Period, {source}.Sales_Order_Id, {source}.Sales_Order_Item_Id
