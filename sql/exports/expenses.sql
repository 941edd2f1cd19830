-- Export rows (close-period and continuous exports, SPEC §6): expenses (deferred commissions) (SPEC §6), line currency.
SELECT Actg_Period, fmt_text(Sales_Order_Id) AS Sales_Order_Id, fmt_text(Sales_Order_Item_Id) AS Sales_Order_Item_Id,
       fmt_text(Product_Id) AS Product_Id, fmt_cents(Beginning_Deferred_Expense) AS Beginning_Deferred_Expense,
       fmt_cents(New_Commissions) AS New_Commissions, fmt_cents(Commission_Amortization) AS Commission_Amortization,
       fmt_cents(Ending_Deferred_Expense) AS Ending_Deferred_Expense,
       -- raw keys: the item (for continuous exports) and the sort order, dropped from the file; _h: a checksum
       -- of the row's values before formatting (the continuous export's change test, without formatting)
       hash(src.Actg_Period, src.Sales_Order_Id, src.Sales_Order_Item_Id, src.Product_Id,
           src.Beginning_Deferred_Expense, src.New_Commissions, src.Commission_Amortization, src.Ending_Deferred_Expense)
           AS _h,
       src.Sales_Order_Item_Id AS _item, src.Actg_Period AS _s0, {order_key}, NULL AS _s3
FROM {source} AS src
WHERE {rows}
  AND (Beginning_Deferred_Expense <> 0 OR New_Commissions <> 0 OR Commission_Amortization <> 0 OR Ending_Deferred_Expense <> 0)
