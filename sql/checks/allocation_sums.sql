-- Orders whose allocation does not sum to the bookings of their active non-usage lines (SPEC §4).
SELECT Sales_Order_Id, sum(Bookings_Amount) AS bookings, sum(Allocated_Revenue) AS allocated,
       'allocated ' || fmt_money(sum(Allocated_Revenue)) || ' ≠ bookings ' || fmt_money(sum(Bookings_Amount))
           || ' (' || any_value(Currency) || ')' AS problem
FROM order_lines
WHERE IsActive AND Revenue_Rule <> 'usage' AND NOT is_invoice_contract
GROUP BY Sales_Order_Id
HAVING sum(Bookings_Amount) <> sum(Allocated_Revenue)
ORDER BY 1
