-- Non-usage lines whose revenue over all periods differs from their allocation (SPEC §4): every line's
-- schedule, frozen periods and catch-ups included, recognizes exactly A.
-- Summed from the rows line_periods shows — frozen_line_periods and the open rows in line_period_amounts
-- (keyed by line_no, see sql/revrec/line_periods.sql) — per line first, then matched to the lines.
WITH revenue AS (
    SELECT Sales_Order_Item_Id, sum(revenue) AS revenue
    FROM (SELECT Sales_Order_Item_Id, sum(Revenue) AS revenue FROM frozen_line_periods GROUP BY ALL
          UNION ALL
          SELECT l.Sales_Order_Item_Id, a.revenue
          FROM (SELECT line_no, sum(revenue) AS revenue FROM line_period_amounts GROUP BY ALL) a
          JOIN line_period_lines l USING (line_no))
    GROUP BY ALL
)
SELECT l.Sales_Order_Id, l.Sales_Order_Item_Id, l.Allocated_Revenue, coalesce(r.revenue, 0) AS revenue,
       'revenue over all periods ' || fmt_money(coalesce(r.revenue, 0)) || ' ≠ allocation '
           || fmt_money(l.Allocated_Revenue) || ' ' || l.Currency AS problem
FROM order_lines l
LEFT JOIN revenue r USING (Sales_Order_Item_Id)
WHERE l.Revenue_Rule <> 'usage' AND l.Sales_Order_Item_Id NOT IN (SELECT Sales_Order_Item_Id FROM held_lines)
  AND coalesce(r.revenue, 0) <> l.Allocated_Revenue
ORDER BY 1, 2
