-- line_periods: what every contract line reports in every period — the revenue waterfall, the unearned
-- revenue rollforward, backlog and deferred expense, in line and home currency (SPEC §4).
-- Closed periods report their frozen rows. With L the last closed period and O = L + 1, O reports
-- (current cumulative through O) − (frozen cumulative through L) for every series, later periods their
-- current schedule; positions and balances carry on from the frozen balances of L.
CREATE OR REPLACE TABLE line_periods AS
WITH close_state AS (
    SELECT index_of_period(max(period)) + 1 AS open_mi FROM closed_periods
),
lines AS (
    SELECT * FROM order_lines WHERE Sales_Order_Item_Id NOT IN (SELECT Sales_Order_Item_Id FROM held_lines)
),
events AS (
    -- invoices, usage and commissions can extend a line's rows beyond its service period
    SELECT Sales_Order_Item_Id, min(mi) AS first_event_mi, max(mi) AS last_event_mi
    FROM (SELECT Sales_Order_Item_Id, mi FROM invoice_events
          UNION ALL SELECT Sales_Order_Item_Id, month_index(Usage_Date) FROM raw_usage WHERE _is_current
          UNION ALL SELECT Sales_Order_Item_Id, month_index(Commission_Date) FROM raw_commissions WHERE _is_current)
    GROUP BY ALL
),
frozen_totals AS (
    SELECT Sales_Order_Item_Id,
           sum(Revenue) AS revenue, sum(New_Billing) AS billing, sum(Foreign_Currency_Change) AS fx,
           sum(coalesce(New_Booking, 0)) AS booking, sum(New_Commissions) AS commissions,
           sum(Commission_Amortization) AS amortization,
           sum(Revenue_Home) AS revenue_home, sum(New_Billing_Home) AS billing_home,
           sum(Foreign_Currency_Change_Home) AS fx_home, sum(New_Commissions_Home) AS commissions_home,
           sum(Commission_Amortization_Home) AS amortization_home,
           arg_max(Position, Actg_Period) AS position, arg_max(Position_Home, Actg_Period) AS position_home,
           arg_max(coalesce(Ending_Backlog, 0), Actg_Period) AS backlog,
           arg_max(Ending_Deferred_Expense, Actg_Period) AS deferred_expense
    FROM frozen_line_periods GROUP BY ALL
),
bounds AS (
    -- a line's rows run from its first period (booking, service start, first event) to the latest of
    -- the contract's last period and its last event; once periods are closed, from O at the earliest
    SELECT l.Sales_Order_Item_Id, l.contract_last_mi, s.open_mi,
           least(l.booking_mi, l.start_mi, coalesce(e.first_event_mi, l.start_mi)) AS first_mi,
           greatest(l.contract_last_mi, coalesce(e.last_event_mi, l.contract_last_mi)) AS last_mi,
           f.Sales_Order_Item_Id IS NOT NULL AS has_frozen
    FROM lines l
    CROSS JOIN close_state s
    LEFT JOIN events e USING (Sales_Order_Item_Id)
    LEFT JOIN frozen_totals f USING (Sales_Order_Item_Id)
),
grid AS (
    SELECT Sales_Order_Item_Id, contract_last_mi, open_mi, first_mi, last_mi,
           unnest(range(lo, greatest(last_mi, lo) + 1)) AS mi
    FROM (SELECT *, CASE WHEN open_mi IS NULL THEN first_mi
                         WHEN first_mi <= open_mi OR has_frozen THEN open_mi
                         ELSE first_mi END AS lo
          FROM bounds)
),
current_through_open AS (
    SELECT s.Sales_Order_Item_Id,
           sum(revenue) AS revenue, sum(billing) AS billing, sum(fx) AS fx, sum(booking) AS booking,
           sum(commissions) AS commissions, sum(amortization) AS amortization,
           sum(revenue_home) AS revenue_home, sum(billing_home) AS billing_home, sum(fx_home) AS fx_home,
           sum(commissions_home) AS commissions_home, sum(amortization_home) AS amortization_home
    FROM line_series s CROSS JOIN close_state c
    WHERE s.mi <= c.open_mi
    GROUP BY ALL
),
reported AS (
    SELECT g.*,
        CASE WHEN g.mi = g.open_mi THEN coalesce(c.revenue, 0) - coalesce(f.revenue, 0) ELSE coalesce(s.revenue, 0) END AS revenue,
        CASE WHEN g.mi = g.open_mi THEN coalesce(c.billing, 0) - coalesce(f.billing, 0) ELSE coalesce(s.billing, 0) END AS billing,
        CASE WHEN g.mi = g.open_mi THEN coalesce(c.fx, 0) - coalesce(f.fx, 0) ELSE coalesce(s.fx, 0) END AS fx,
        CASE WHEN g.mi = g.open_mi THEN coalesce(c.booking, 0) - coalesce(f.booking, 0) ELSE coalesce(s.booking, 0) END AS booking,
        CASE WHEN g.mi = g.open_mi THEN coalesce(c.commissions, 0) - coalesce(f.commissions, 0) ELSE coalesce(s.commissions, 0) END AS commissions,
        CASE WHEN g.mi = g.open_mi THEN coalesce(c.amortization, 0) - coalesce(f.amortization, 0) ELSE coalesce(s.amortization, 0) END AS amortization,
        CASE WHEN g.mi = g.open_mi THEN coalesce(c.revenue_home, 0) - coalesce(f.revenue_home, 0) ELSE coalesce(s.revenue_home, 0) END AS revenue_home,
        CASE WHEN g.mi = g.open_mi THEN coalesce(c.billing_home, 0) - coalesce(f.billing_home, 0) ELSE coalesce(s.billing_home, 0) END AS billing_home,
        CASE WHEN g.mi = g.open_mi THEN coalesce(c.fx_home, 0) - coalesce(f.fx_home, 0) ELSE coalesce(s.fx_home, 0) END AS fx_home,
        CASE WHEN g.mi = g.open_mi THEN coalesce(c.commissions_home, 0) - coalesce(f.commissions_home, 0) ELSE coalesce(s.commissions_home, 0) END AS commissions_home,
        CASE WHEN g.mi = g.open_mi THEN coalesce(c.amortization_home, 0) - coalesce(f.amortization_home, 0) ELSE coalesce(s.amortization_home, 0) END AS amortization_home
    FROM grid g
    LEFT JOIN line_series s
           ON s.Sales_Order_Item_Id = g.Sales_Order_Item_Id AND s.mi = g.mi AND (g.open_mi IS NULL OR g.mi > g.open_mi)
    LEFT JOIN current_through_open c
           ON c.Sales_Order_Item_Id = g.Sales_Order_Item_Id AND g.mi = g.open_mi
    LEFT JOIN frozen_totals f
           ON f.Sales_Order_Item_Id = g.Sales_Order_Item_Id AND g.mi = g.open_mi
),
rolled AS (
    SELECT r.*,
           coalesce(fb.frozen_position, 0) AS position_start, coalesce(fb.frozen_position_home, 0) AS position_home_start,
           coalesce(fb.frozen_backlog, 0) AS backlog_start, coalesce(fb.frozen_deferred_expense, 0) AS deferred_expense_start,
           sum(billing + fx - revenue) OVER w AS cum_flow,
           sum(billing_home + fx_home - revenue_home) OVER w AS cum_flow_home,
           sum(booking - revenue) OVER w AS cum_backlog,
           sum(commissions - amortization) OVER w AS cum_expense
    FROM reported r
    LEFT JOIN (SELECT Sales_Order_Item_Id, position AS frozen_position, position_home AS frozen_position_home,
                      backlog AS frozen_backlog, deferred_expense AS frozen_deferred_expense
               FROM frozen_totals) fb USING (Sales_Order_Item_Id)
    WINDOW w AS (PARTITION BY r.Sales_Order_Item_Id ORDER BY r.mi ROWS UNBOUNDED PRECEDING)
),
positioned AS (
    -- P = unearned − unbilled; from the contract's last period on, the adjustment trues P up to 0
    SELECT *,
           CASE WHEN mi >= contract_last_mi THEN 0 ELSE position_start + cum_flow END AS position,
           CASE WHEN mi >= contract_last_mi THEN 0 ELSE position_home_start + cum_flow_home END AS position_home,
           backlog_start + cum_backlog AS backlog,
           deferred_expense_start + cum_expense AS deferred_expense
    FROM rolled
),
with_previous AS (
    SELECT *,
           coalesce(lag(position) OVER w, position_start) AS prev_position,
           coalesce(lag(position_home) OVER w, position_home_start) AS prev_position_home,
           coalesce(lag(backlog) OVER w, backlog_start) AS prev_backlog,
           coalesce(lag(deferred_expense) OVER w, deferred_expense_start) AS prev_deferred_expense
    FROM positioned
    WINDOW w AS (PARTITION BY Sales_Order_Item_Id ORDER BY mi)
),
open_rows AS (
    SELECT period_of_index(p.mi) AS Actg_Period,
           l.Sales_Order_Id, l.Sales_Order_Item_Id, l.Reference_Invoice_Number, l.Product_Id, l.Product_Code,
           l.Product_Name, l.Class, l.Location, l.Department, l.Customer_Id, l.Subsidiary_Id,
           l.Order_Date AS Contract_Date, l.Currency, l.Revenue_Rule, l.Bookings_Amount AS Booking_Amount,
           greatest(p.prev_position, 0) AS Beginning_Unearned_Revenue,
           p.billing AS New_Billing, p.revenue AS Revenue, p.fx AS Foreign_Currency_Change,
           p.position - p.prev_position - (p.billing + p.fx - p.revenue) AS Adjustment_To_Unearned_Revenue,
           greatest(p.position, 0) AS Ending_Unearned_Revenue,
           greatest(-p.prev_position, 0) AS Beginning_Unbilled_Receivable,
           greatest(-p.position, 0) AS Ending_Unbilled_Receivable,
           p.position AS Position,
           CASE WHEN l.Revenue_Rule <> 'usage' THEN p.prev_backlog END AS Beginning_Backlog,
           CASE WHEN l.Revenue_Rule <> 'usage' THEN p.booking END AS New_Booking,
           CASE WHEN l.Revenue_Rule <> 'usage' THEN p.backlog END AS Ending_Backlog,
           p.prev_deferred_expense AS Beginning_Deferred_Expense, p.commissions AS New_Commissions,
           p.amortization AS Commission_Amortization, p.deferred_expense AS Ending_Deferred_Expense,
           '{home}' AS Home_Currency,
           p.revenue_home AS Revenue_Home, p.billing_home AS New_Billing_Home, p.fx_home AS Foreign_Currency_Change_Home,
           p.position_home - p.prev_position_home - (p.billing_home + p.fx_home - p.revenue_home) AS Adjustment_Home,
           greatest(p.prev_position_home, 0) AS Beginning_Unearned_Home, greatest(p.position_home, 0) AS Ending_Unearned_Home,
           greatest(-p.prev_position_home, 0) AS Beginning_Unbilled_Home, greatest(-p.position_home, 0) AS Ending_Unbilled_Home,
           p.position_home AS Position_Home,
           p.commissions_home AS New_Commissions_Home, p.amortization_home AS Commission_Amortization_Home
    FROM with_previous p
    JOIN lines l USING (Sales_Order_Item_Id)
    WHERE p.mi BETWEEN p.first_mi AND p.last_mi
       OR p.revenue <> 0 OR p.billing <> 0 OR p.fx <> 0 OR p.booking <> 0 OR p.commissions <> 0 OR p.amortization <> 0
       OR p.position <> 0 OR p.prev_position <> 0 OR p.position_home <> 0 OR p.prev_position_home <> 0
       OR p.backlog <> 0 OR p.prev_backlog <> 0 OR p.deferred_expense <> 0 OR p.prev_deferred_expense <> 0
       OR p.revenue_home <> 0 OR p.billing_home <> 0 OR p.fx_home <> 0
       OR p.commissions_home <> 0 OR p.amortization_home <> 0
),
vanished AS (
    -- A line frozen in closed periods that is no longer a contract line (an invoice-as-contract line whose
    -- invoice now names an order line) is reversed in O, everything it reported caught up to zero.
    SELECT f.*, s.open_mi,
           last.* EXCLUDE (Sales_Order_Item_Id)
    FROM frozen_totals f
    CROSS JOIN close_state s
    JOIN (SELECT Sales_Order_Item_Id, arg_max(COLUMNS(* EXCLUDE (Sales_Order_Item_Id, Actg_Period)), Actg_Period)
          FROM frozen_line_periods GROUP BY Sales_Order_Item_Id) last USING (Sales_Order_Item_Id)
    WHERE s.open_mi IS NOT NULL
      AND Sales_Order_Item_Id NOT IN (SELECT Sales_Order_Item_Id FROM order_lines)
),
vanished_rows AS (
    SELECT period_of_index(open_mi) AS Actg_Period,
           Sales_Order_Id, Sales_Order_Item_Id, Reference_Invoice_Number, Product_Id, Product_Code, Product_Name, Class,
           Location, Department, Customer_Id, Subsidiary_Id, Contract_Date, Currency, Revenue_Rule, Booking_Amount,
           greatest(position, 0) AS Beginning_Unearned_Revenue,
           -billing AS New_Billing, -revenue AS Revenue, -fx AS Foreign_Currency_Change,
           -position - (-billing - fx + revenue) AS Adjustment_To_Unearned_Revenue,
           0 AS Ending_Unearned_Revenue, greatest(-position, 0) AS Beginning_Unbilled_Receivable,
           0 AS Ending_Unbilled_Receivable, 0 AS Position,
           CASE WHEN Revenue_Rule <> 'usage' THEN backlog END AS Beginning_Backlog,
           CASE WHEN Revenue_Rule <> 'usage' THEN -booking END AS New_Booking,
           CASE WHEN Revenue_Rule <> 'usage' THEN backlog - booking + revenue END AS Ending_Backlog,
           deferred_expense AS Beginning_Deferred_Expense, -commissions AS New_Commissions,
           -amortization AS Commission_Amortization, deferred_expense - commissions + amortization AS Ending_Deferred_Expense,
           Home_Currency,
           -revenue_home AS Revenue_Home, -billing_home AS New_Billing_Home, -fx_home AS Foreign_Currency_Change_Home,
           -position_home - (-billing_home - fx_home + revenue_home) AS Adjustment_Home,
           greatest(position_home, 0) AS Beginning_Unearned_Home, 0 AS Ending_Unearned_Home,
           greatest(-position_home, 0) AS Beginning_Unbilled_Home, 0 AS Ending_Unbilled_Home, 0 AS Position_Home,
           -commissions_home AS New_Commissions_Home, -amortization_home AS Commission_Amortization_Home
    FROM vanished
    WHERE revenue <> 0 OR billing <> 0 OR fx <> 0 OR booking <> 0 OR commissions <> 0 OR amortization <> 0
       OR position <> 0 OR position_home <> 0 OR revenue_home <> 0 OR billing_home <> 0 OR fx_home <> 0
       OR commissions_home <> 0 OR amortization_home <> 0 OR deferred_expense <> 0
)
SELECT * FROM frozen_line_periods
UNION ALL BY NAME
SELECT * FROM open_rows
UNION ALL BY NAME
SELECT * FROM vanished_rows;
