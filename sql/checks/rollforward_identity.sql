-- Rows whose rollforward does not add up (SPEC §4): beginning + billing + FX − revenue + adjustment = ending
-- position, beginning = previous ending, backlog and deferred expense roll forward.
WITH rows AS (
    SELECT *,
           lag(Ending_Unearned_Revenue) OVER w AS prev_unearned, lag(Ending_Unbilled_Receivable) OVER w AS prev_unbilled,
           lag(Ending_Backlog) OVER w AS prev_backlog, lag(Ending_Deferred_Expense) OVER w AS prev_expense,
           lag(Actg_Period) OVER w AS prev_period
    FROM line_periods
    WINDOW w AS (PARTITION BY Sales_Order_Item_Id ORDER BY Actg_Period)
)
SELECT Sales_Order_Id, Sales_Order_Item_Id, Actg_Period,
       CASE WHEN Beginning_Unearned_Revenue - Beginning_Unbilled_Receivable + New_Billing + Foreign_Currency_Change
                 - Revenue + Adjustment_To_Unearned_Revenue <> Ending_Unearned_Revenue - Ending_Unbilled_Receivable
            THEN 'unearned rollforward off by ' || fmt_money(Ending_Unearned_Revenue - Ending_Unbilled_Receivable
                 - (Beginning_Unearned_Revenue - Beginning_Unbilled_Receivable + New_Billing + Foreign_Currency_Change
                    - Revenue + Adjustment_To_Unearned_Revenue)) || ' ' || Currency
            WHEN prev_period IS NOT NULL AND (Beginning_Unearned_Revenue <> prev_unearned OR Beginning_Unbilled_Receivable <> prev_unbilled)
            THEN 'beginning balances differ from the ending balances of ' || prev_period
            WHEN Ending_Backlog IS NOT NULL AND Beginning_Backlog + New_Booking - Revenue <> Ending_Backlog
            THEN 'backlog rollforward off by ' || fmt_money(Ending_Backlog - (Beginning_Backlog + New_Booking - Revenue))
            WHEN Beginning_Deferred_Expense + New_Commissions - Commission_Amortization <> Ending_Deferred_Expense
            THEN 'deferred expense rollforward off by ' || fmt_money(Ending_Deferred_Expense - (Beginning_Deferred_Expense + New_Commissions - Commission_Amortization))
            WHEN Ending_Unearned_Revenue < 0 OR Ending_Unbilled_Receivable < 0 OR (Ending_Unearned_Revenue > 0 AND Ending_Unbilled_Receivable > 0)
            THEN 'a line carries both unearned revenue and an unbilled receivable, or a negative balance'
       END AS problem
FROM rows
WHERE Actg_Period BETWEEN {from_period} AND {to_period}
  AND problem IS NOT NULL
ORDER BY Actg_Period, Sales_Order_Id, Sales_Order_Item_Id
