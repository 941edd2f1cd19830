-- Reference checks of a staged usage unit: the line must be a known sales-order line or invoice-as-contract line.
SELECT _row_number AS row_number, 'Sales_Order_Item_Id' AS column_name, s.Sales_Order_Item_Id AS value,
       'is not a known sales-order line (nor an invoice-as-contract line <Invoice_Number>-<Invoice_Line>)' AS reason
FROM stage s
WHERE NOT EXISTS (SELECT 1 FROM raw_sales_orders o WHERE o._is_current AND o.Sales_Order_Item_Id = s.Sales_Order_Item_Id)
  AND NOT EXISTS (SELECT 1 FROM raw_invoices i
                  WHERE i._is_current AND i.Sales_Order_Item_Id IS NULL
                    AND i.Invoice_Number || '-' || i.Invoice_Line = s.Sales_Order_Item_Id)
