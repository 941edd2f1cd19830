-- Export rows (close-period and continuous exports, SPEC §6): revenue_backlog (SPEC §6): non-usage lines, line currency.
SELECT Actg_Period, fmt_text(Sales_Order_Id) AS Sales_Order_Id, fmt_text(Sales_Order_Item_Id) AS Sales_Order_Item_Id,
       fmt_text(Product_Code) AS Product_Code, fmt_cents(Beginning_Backlog) AS Beginning_Backlog,
       fmt_cents(New_Booking) AS New_Booking, fmt_cents(Revenue) AS Total_Revenue, fmt_cents(Ending_Backlog) AS Ending_Backlog,
       -- raw keys: the item (for continuous exports) and the sort order, dropped from the file; _h: a checksum
       -- of the row's values before formatting (the continuous export's change test, without formatting)
       hash(src.Actg_Period, src.Sales_Order_Id, src.Sales_Order_Item_Id, src.Product_Code, src.Beginning_Backlog,
           src.New_Booking, src.Revenue, src.Ending_Backlog) AS _h,
       src.Sales_Order_Item_Id AS _item, src.Actg_Period AS _s0, {order_key}, NULL AS _s3
FROM {source} AS src
WHERE {rows} AND Ending_Backlog IS NOT NULL
  AND (Beginning_Backlog <> 0 OR New_Booking <> 0 OR Revenue <> 0 OR Ending_Backlog <> 0)
