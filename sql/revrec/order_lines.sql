-- order_lines: one row per contract line — sales-order lines and invoice-as-contract lines (SPEC §2) —
-- with its effective revenue rule, subsidiary, booking and relative-SSP allocation (SPEC §4), in cents.
CREATE OR REPLACE TABLE order_lines AS
WITH sales_order_lines AS (
    SELECT o.Sales_Order_Id, o.Sales_Order_Item_Id, CAST(NULL AS VARCHAR) AS Reference_Invoice_Number,
           o.Customer_Id, o.Product_Id, o.Order_Date, o.Quantity, o.Sale_Price, o.List_Price,
           o.Service_Start_Date, o.Service_End_Date, o.Currency, o.IsActive,
           coalesce(o.Revenue_Rule, p.Revenue_Rule) AS Revenue_Rule,
           coalesce(o.Subsidiary_Id, c.Subsidiary_Id) AS Subsidiary_Id,
           -- Bookings_Amount = round(Quantity × Sale_Price)
           CAST(rdiv(micros(o.Quantity) * micros(o.Sale_Price), 10000000000) AS BIGINT) AS Bookings_Amount,
           -- S_i = Quantity × unit SSP (product SSP, else List_Price, else Sale_Price), in 1e-12 units
           micros(o.Quantity) * micros(coalesce(p.SSP, o.List_Price, o.Sale_Price)) AS ssp_weight,
           false AS is_invoice_contract
    FROM raw_sales_orders o
    LEFT JOIN raw_products p ON p._is_current AND p.Product_Id = o.Product_Id
    LEFT JOIN raw_customers c ON c._is_current AND c.Customer_Id = o.Customer_Id
    WHERE o._is_current
),
invoice_contract_lines AS (
    -- An invoice line without Sales_Order_Item_Id is its own contract line <Invoice_Number>-<Invoice_Line>.
    SELECT i.Invoice_Number || '-' || i.Invoice_Line AS Sales_Order_Id,
           i.Invoice_Number || '-' || i.Invoice_Line AS Sales_Order_Item_Id,
           i.Invoice_Number AS Reference_Invoice_Number,
           i.Customer_Id, i.Product_Id, i.Billing_Date AS Order_Date,
           CAST(1 AS DECIMAL(18,6)) AS Quantity, CAST(i.Billing_Amount AS DECIMAL(18,6)) AS Sale_Price,
           CAST(NULL AS DECIMAL(18,6)) AS List_Price,
           coalesce(i.Service_Start_Date, i.Billing_Date) AS Service_Start_Date,
           coalesce(i.Service_End_Date, i.Service_Start_Date, i.Billing_Date) AS Service_End_Date,
           i.Currency, true AS IsActive, p.Revenue_Rule,
           c.Subsidiary_Id,
           cents(i.Billing_Amount) AS Bookings_Amount,
           CAST(0 AS HUGEINT) AS ssp_weight,
           true AS is_invoice_contract
    FROM raw_invoices i
    LEFT JOIN raw_products p ON p._is_current AND p.Product_Id = i.Product_Id
    LEFT JOIN raw_customers c ON c._is_current AND c.Customer_Id = i.Customer_Id
    WHERE i._is_current AND i.Sales_Order_Item_Id IS NULL
),
all_lines AS (
    SELECT * FROM sales_order_lines
    UNION ALL BY NAME
    SELECT * FROM invoice_contract_lines
),
allocable AS (
    -- Allocation runs within a Sales_Order_Id over its active non-usage sales-order lines.
    SELECT Sales_Order_Id, Sales_Order_Item_Id, Bookings_Amount, ssp_weight,
           sum(Bookings_Amount) OVER (PARTITION BY Sales_Order_Id) AS order_total,
           sum(ssp_weight) OVER (PARTITION BY Sales_Order_Id) AS order_weight
    FROM all_lines
    WHERE IsActive AND Revenue_Rule <> 'usage' AND NOT is_invoice_contract
),
floored AS (
    SELECT *,
           CASE WHEN order_weight = 0 THEN Bookings_Amount
                ELSE CAST(order_total AS HUGEINT) * ssp_weight // order_weight END AS floor_share,
           CASE WHEN order_weight = 0 THEN 0
                ELSE CAST(order_total AS HUGEINT) * ssp_weight % order_weight END AS remainder
    FROM allocable
),
largest_remainder AS (
    -- floor each share to the cent, then one cent each to the largest remainders, ties to the smallest id
    SELECT Sales_Order_Item_Id, order_weight, floor_share,
           order_total - sum(floor_share) OVER (PARTITION BY Sales_Order_Id) AS cents_left,
           row_number() OVER (PARTITION BY Sales_Order_Id ORDER BY remainder DESC, Sales_Order_Item_Id) AS remainder_rank
    FROM floored
),
allocated AS (
    SELECT Sales_Order_Item_Id,
           CAST(floor_share + CASE WHEN order_weight <> 0 AND remainder_rank <= cents_left THEN 1 ELSE 0 END AS BIGINT)
               AS Allocated_Revenue
    FROM largest_remainder
),
contract_end AS (
    -- The contract's last period: the latest Service_End_Date among the lines of the order, any status.
    SELECT Sales_Order_Id, max(Service_End_Date) AS contract_end_date FROM all_lines GROUP BY Sales_Order_Id
)
SELECT l.Sales_Order_Id, l.Sales_Order_Item_Id, l.Reference_Invoice_Number, l.Customer_Id, l.Product_Id,
       l.Order_Date, l.Quantity, l.Sale_Price, l.List_Price, l.Service_Start_Date, l.Service_End_Date,
       l.Currency, l.IsActive, l.Revenue_Rule, l.Subsidiary_Id, l.Bookings_Amount, l.is_invoice_contract,
       CASE WHEN l.is_invoice_contract THEN l.Bookings_Amount
            ELSE coalesce(a.Allocated_Revenue, 0) END AS Allocated_Revenue,
       month_index(l.Service_Start_Date) AS start_mi,
       month_index(l.Service_End_Date) AS end_mi,
       least(month_index(l.Order_Date), month_index(l.Service_Start_Date)) AS booking_mi,
       month_index(ce.contract_end_date) AS contract_last_mi,
       p.Product_Code, p.Product_Name, p.Class, p.Location, p.Department
FROM all_lines l
LEFT JOIN allocated a USING (Sales_Order_Item_Id)
JOIN contract_end ce USING (Sales_Order_Id)
LEFT JOIN raw_products p ON p._is_current AND p.Product_Id = l.Product_Id;
