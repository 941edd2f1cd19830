-- orders: the current terms of every contract line that is not held (SPEC §6 orders), with Duration and MRR.
-- Duration = whole months k (the largest with start + k months ≤ end + 1 day, the day clamped to the
-- month's end) plus the remaining days over the length of the month in which they begin; 2 decimals.
CREATE OR REPLACE TABLE orders AS
WITH spans AS (
    SELECT l.*, CAST(l.Service_End_Date + 1 AS DATE) AS end_exclusive,
           month_index(CAST(l.Service_End_Date + 1 AS DATE)) - month_index(l.Service_Start_Date) AS k0
    FROM order_lines l
    WHERE l.Sales_Order_Item_Id NOT IN (SELECT Sales_Order_Item_Id FROM held_lines)
),
whole_months AS (
    SELECT *, CASE WHEN CAST(Service_Start_Date + to_months(k0) AS DATE) > end_exclusive THEN k0 - 1 ELSE k0 END AS k
    FROM spans
),
durations AS (
    SELECT *, CAST(Service_Start_Date + to_months(k) AS DATE) AS anchor FROM whole_months
),
measured AS (
    SELECT *,
           CAST(rdiv((CAST(k AS HUGEINT) * day(last_day(anchor)) + (end_exclusive - anchor)) * 100, day(last_day(anchor))) AS BIGINT)
               AS Duration_Hundredths
    FROM durations
)
SELECT Sales_Order_Id, Sales_Order_Item_Id, Product_Id, Customer_Id, Order_Date, Bookings_Amount, Quantity,
       List_Price, Sale_Price,
       CASE WHEN Revenue_Rule = 'usage' THEN 0 ELSE Allocated_Revenue END AS Allocated_Revenue,
       IsActive, Service_Start_Date, Service_End_Date,
       -- MRR = Allocated_Revenue / Duration (the exported 2-decimal Duration) for ratable lines, else 0
       CASE WHEN Revenue_Rule IN ('ratable_daily', 'ratable_monthly')
            THEN CAST(rdiv(CAST(Allocated_Revenue AS HUGEINT) * 100, Duration_Hundredths) AS BIGINT)
            ELSE 0 END AS MRR,
       Duration_Hundredths, Currency, Reference_Invoice_Number, Revenue_Rule
FROM measured;
