-- Export rows (close-period and continuous exports, SPEC §6): orders (SPEC §6): every line with Order_Date ≤ the end of the period.
SELECT Actg_Period, fmt_text(Sales_Order_Id) AS Sales_Order_Id, fmt_text(Sales_Order_Item_Id) AS Sales_Order_Item_Id,
       fmt_text(Product_Id) AS Product_Id, fmt_text(Customer_Id) AS Customer_Id, Order_Date,
       fmt_cents(Bookings_Amount) AS Bookings_Amount, fmt_plain(Quantity) AS Quantity, fmt_plain(List_Price) AS List_Price,
       fmt_plain(Sale_Price) AS Sale_Price, fmt_cents(Allocated_Revenue) AS Allocated_Revenue,
       CASE WHEN IsActive THEN 'true' ELSE 'false' END AS IsActive, Service_Start_Date, Service_End_Date,
       fmt_cents(MRR) AS MRR, fmt_cents(Duration_Hundredths) AS Duration, Currency,
       fmt_text(Reference_Invoice_Number) AS Reference_Invoice_Number,
       -- raw keys: the item (for continuous exports) and the sort order, dropped from the file; _h: a checksum
       -- of the row's values before formatting (the continuous export's change test, without formatting)
       hash(src.Actg_Period, src.Sales_Order_Id, src.Sales_Order_Item_Id, src.Product_Id, src.Customer_Id,
           src.Order_Date, src.Bookings_Amount, src.Quantity, src.List_Price, src.Sale_Price, src.Allocated_Revenue,
           src.IsActive, src.Service_Start_Date, src.Service_End_Date, src.MRR, src.Duration_Hundredths, src.Currency,
           src.Reference_Invoice_Number) AS _h,
       src.Sales_Order_Item_Id AS _item, src.Actg_Period AS _s0, {order_key}, NULL AS _s3
FROM {source} AS src
WHERE {rows}
