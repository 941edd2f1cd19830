-- Reference checks of a staged sales_orders unit against the warehouse (SPEC §2 Import semantics).
SELECT _row_number AS row_number, 'Customer_Id' AS column_name, s.Customer_Id AS value,
       'is not a known customer: import it in a customers file first (or in the same drop)' AS reason
FROM stage s
WHERE NOT EXISTS (SELECT 1 FROM raw_customers c WHERE c._is_current AND c.Customer_Id = s.Customer_Id)
UNION ALL
SELECT _row_number, 'Product_Id', s.Product_Id,
       'is not a known product: import it in a products file first (or in the same drop)'
FROM stage s
WHERE NOT EXISTS (SELECT 1 FROM raw_products p WHERE p._is_current AND p.Product_Id = s.Product_Id)
UNION ALL
-- one currency per sales order, within the file (min <> max finds the orders cheaply; only theirs are listed)
SELECT s._row_number, 'Currency', s.Currency,
       'differs from other lines of sales order ' || s.Sales_Order_Id || ' in this file (' || m.currencies || '): an order has one currency'
FROM stage s
JOIN (SELECT Sales_Order_Id, string_agg(DISTINCT Currency, ', ' ORDER BY Currency) AS currencies
      FROM stage
      WHERE Sales_Order_Id IN (SELECT Sales_Order_Id FROM stage GROUP BY Sales_Order_Id HAVING min(Currency) <> max(Currency))
      GROUP BY Sales_Order_Id) m USING (Sales_Order_Id)
UNION ALL
-- one currency per sales order, against lines already in the warehouse that this file does not replace
SELECT s._row_number, 'Currency', s.Currency,
       'differs from the currency ' || o.Currency || ' of line ' || o.Sales_Order_Item_Id || ' already imported for sales order ' || s.Sales_Order_Id
FROM stage s
JOIN raw_sales_orders o
  ON o._is_current AND o.Sales_Order_Id = s.Sales_Order_Id AND o.Currency <> s.Currency
WHERE NOT EXISTS (SELECT 1 FROM stage r WHERE r.Sales_Order_Item_Id = o.Sales_Order_Item_Id)
QUALIFY row_number() OVER (PARTITION BY s._row_number ORDER BY o.Sales_Order_Item_Id) = 1
UNION ALL
-- an order line keeps its order: moving a line to another order would silently re-allocate both
SELECT s._row_number, 'Sales_Order_Id', s.Sales_Order_Id,
       'line ' || s.Sales_Order_Item_Id || ' was imported before under sales order ' || o.Sales_Order_Id || ': a line cannot move to another order'
FROM stage s
JOIN raw_sales_orders o ON o._is_current AND o.Sales_Order_Item_Id = s.Sales_Order_Item_Id AND o.Sales_Order_Id <> s.Sales_Order_Id
