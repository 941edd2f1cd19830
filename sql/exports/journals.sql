-- Export rows (close-period and continuous exports, SPEC §6): journals (SPEC §6), home currency; one net line per account type.
SELECT Actg_Period, fmt_text(Sales_Order_Id) AS Sales_Order_Id, fmt_text(Sales_Order_Item_Id) AS Sales_Order_Item_Id,
       fmt_text(Account_Id) AS Account_Id, fmt_text(Product_Id) AS Product_Id, fmt_text(Customer_Id) AS Customer_Id,
       fmt_text(Link_Id) AS Link_Id, fmt_text(Class) AS Class, Account_Type,
       fmt_cents(greatest(-Net_Debit, 0)) AS Credit_Amount, fmt_cents(greatest(Net_Debit, 0)) AS Debit_Amount, Currency,
       -- raw keys: the item (for continuous exports) and the sort order, dropped from the file; _h: a checksum
       -- of the row's values before formatting (the continuous export's change test, without formatting)
       hash(src.Actg_Period, src.Sales_Order_Id, src.Sales_Order_Item_Id, src.Account_Id, src.Product_Id,
           src.Customer_Id, src.Link_Id, src.Class, src.Account_Type, src.Net_Debit, src.Currency) AS _h,
       src.Sales_Order_Item_Id AS _item, src.Actg_Period AS _s0, {order_key}, src.Account_Type AS _s3
FROM {source} AS src
WHERE {rows} AND Net_Debit <> 0
