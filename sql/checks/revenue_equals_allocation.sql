-- Non-usage lines whose revenue over all periods differs from their allocation (SPEC §4): every line's
-- schedule, frozen periods and catch-ups included, recognizes exactly A.
SELECT l.Sales_Order_Id, l.Sales_Order_Item_Id, l.Allocated_Revenue, coalesce(sum(lp.Revenue), 0) AS revenue,
       'revenue over all periods ' || fmt_money(coalesce(sum(lp.Revenue), 0)) || ' ≠ allocation '
           || fmt_money(l.Allocated_Revenue) || ' ' || l.Currency AS problem
FROM order_lines l
LEFT JOIN line_periods lp USING (Sales_Order_Item_Id)
WHERE l.Revenue_Rule <> 'usage' AND l.Sales_Order_Item_Id NOT IN (SELECT Sales_Order_Item_Id FROM held_lines)
GROUP BY l.Sales_Order_Id, l.Sales_Order_Item_Id, l.Allocated_Revenue, l.Currency
HAVING coalesce(sum(lp.Revenue), 0) <> l.Allocated_Revenue
ORDER BY 1, 2
