-- Close-period export: revenue_backlog of {period} (SPEC §6): non-usage lines, line currency.
SELECT Actg_Period, fmt_text(Sales_Order_Id) AS Sales_Order_Id, fmt_text(Sales_Order_Item_Id) AS Sales_Order_Item_Id,
       fmt_text(Product_Code) AS Product_Code, fmt_money(Beginning_Backlog) AS Beginning_Backlog,
       fmt_money(New_Booking) AS New_Booking, fmt_money(Revenue) AS Total_Revenue, fmt_money(Ending_Backlog) AS Ending_Backlog
FROM {source}
WHERE Actg_Period = {period} AND Ending_Backlog IS NOT NULL
  AND (Beginning_Backlog <> 0 OR New_Booking <> 0 OR Revenue <> 0 OR Ending_Backlog <> 0)
ORDER BY {source}.Actg_Period, {source}.Sales_Order_Id, {source}.Sales_Order_Item_Id
