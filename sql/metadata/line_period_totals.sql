-- What the line-period assets' UI metadata shows per period (defs/revrec/assets.py: their totals and the chart),
-- summed in one pass over line_periods instead of once per asset: per period and currency, the row counts and the
-- sums in cents of every column those totals show (revenue_backlog's only over its own rows, the lines with a
-- backlog). Built when an asset's metadata first needs it; what changes line_periods' rows drops it (the
-- line_periods step, a reopen), so it never outlives the rows it sums. A close's freeze copies line_periods' rows
-- as they are into frozen_line_periods, which leaves the view's rows, and so these sums, as they were.
CREATE TABLE line_period_totals AS
SELECT Actg_Period, Currency,
       count(*) AS line_rows,
       count(*) FILTER (WHERE Ending_Backlog IS NOT NULL) AS backlog_rows,
       sum(New_Billing) AS New_Billing, sum(Revenue) AS Revenue,
       sum(Adjustment_To_Unearned_Revenue) AS Adjustment_To_Unearned_Revenue,
       sum(Ending_Unearned_Revenue) AS Ending_Unearned_Revenue,
       sum(Ending_Unbilled_Receivable) AS Ending_Unbilled_Receivable,
       sum(New_Booking) FILTER (WHERE Ending_Backlog IS NOT NULL) AS Backlog_New_Booking,
       sum(Revenue) FILTER (WHERE Ending_Backlog IS NOT NULL) AS Backlog_Revenue,
       sum(Ending_Backlog) AS Ending_Backlog,
       sum(New_Commissions) AS New_Commissions, sum(Commission_Amortization) AS Commission_Amortization,
       sum(Ending_Deferred_Expense) AS Ending_Deferred_Expense,
       sum(Revenue_Home) AS Revenue_Home, sum(New_Billing_Home) AS New_Billing_Home,
       sum(Ending_Unearned_Home) AS Ending_Unearned_Home, sum(Ending_Unbilled_Home) AS Ending_Unbilled_Home
FROM line_periods
GROUP BY ALL;
