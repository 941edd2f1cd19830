-- Reference checks of a staged invoices unit (SPEC §2: order lines known; invoice-as-contract lines carry
-- Customer_Id and Product_Id).
WITH named_lines AS (  -- the lines that name an order line, with that line's order (known = false: no such line)
    SELECT s._row_number, s.Sales_Order_Id, s.Sales_Order_Item_Id, o.Sales_Order_Id AS line_order,
           o.Sales_Order_Item_Id IS NOT NULL AS known
    FROM stage s
    LEFT JOIN raw_sales_orders o ON o._is_current AND o.Sales_Order_Item_Id = s.Sales_Order_Item_Id
    WHERE s.Sales_Order_Item_Id IS NOT NULL
)
SELECT _row_number AS row_number, 'Sales_Order_Item_Id' AS column_name, Sales_Order_Item_Id AS value,
       'is not a known sales-order line: import the order first (or in the same drop)' AS reason
FROM named_lines
WHERE NOT known
UNION ALL
SELECT _row_number, 'Sales_Order_Id', Sales_Order_Id,
       'does not match the order ' || line_order || ' of line ' || Sales_Order_Item_Id
FROM named_lines
WHERE known AND Sales_Order_Id IS NOT NULL AND Sales_Order_Id <> line_order
UNION ALL
SELECT _row_number, 'Customer_Id', NULL,
       'is required on an invoice line without Sales_Order_Item_Id (invoice-as-contract)'
FROM stage WHERE Sales_Order_Item_Id IS NULL AND Customer_Id IS NULL
UNION ALL
SELECT _row_number, 'Product_Id', NULL,
       'is required on an invoice line without Sales_Order_Item_Id (invoice-as-contract)'
FROM stage WHERE Sales_Order_Item_Id IS NULL AND Product_Id IS NULL
UNION ALL
SELECT s._row_number, 'Customer_Id', s.Customer_Id, 'is not a known customer'
FROM stage s
WHERE s.Customer_Id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM raw_customers c WHERE c._is_current AND c.Customer_Id = s.Customer_Id)
UNION ALL
SELECT s._row_number, 'Product_Id', s.Product_Id, 'is not a known product'
FROM stage s
WHERE s.Product_Id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM raw_products p WHERE p._is_current AND p.Product_Id = s.Product_Id)
UNION ALL
SELECT s._row_number, 'Service_End_Date', NULL,
       'is required when Service_Start_Date is given on an invoice-as-contract line'
FROM stage s WHERE s.Sales_Order_Item_Id IS NULL AND s.Service_Start_Date IS NOT NULL AND s.Service_End_Date IS NULL
UNION ALL
-- an invoice-as-contract line becomes order line <Invoice_Number>-<Invoice_Line>: its id must be free
SELECT s._row_number, 'Invoice_Number', s.Invoice_Number,
       'would create the invoice-as-contract line ' || s.Invoice_Number || '-' || s.Invoice_Line || ', which is already a sales-order line id'
FROM stage s
JOIN raw_sales_orders o ON o._is_current AND o.Sales_Order_Item_Id = s.Invoice_Number || '-' || s.Invoice_Line
WHERE s.Sales_Order_Item_Id IS NULL
