-- line_periods: what every contract line reports in every period — the revenue waterfall, the unearned
-- revenue rollforward, backlog and deferred expense, in line and home currency (SPEC §4).
-- Closed periods report their frozen rows. With L the last closed period and O = L + 1, O reports
-- (current cumulative through O) − (frozen cumulative through L) for every series, later periods their
-- current schedule; positions and balances carry on from the frozen balances of L.
--
-- Storage: a line's attributes repeat on each of its ~16 rows and most amounts follow from a few by
-- arithmetic, so the open periods are stored narrow — line_period_lines (one row per line: its
-- attributes as of this computation) and line_period_amounts (one row per line and period: the flows
-- and balances) — and line_periods is the view that assembles the rows from them and the frozen rows.

-- The lines that are not held, numbered in id order (a stable key: the same data gives the same numbers).
-- Integer keys are spread 2^32 apart: DuckDB 2.0.0 joins a dense integer key with its perfect hash join,
-- whose dictionary output makes some later operators fail ("INTERNAL Error: dict-surviving cache: global
-- dictionary column … changed identity"); a sparse key is joined by hashing, as fast here and safe.
CREATE OR REPLACE TEMP TABLE period_lines AS
SELECT row_number() OVER (ORDER BY Sales_Order_Item_Id) * 4294967296 AS line_no, *
FROM order_lines WHERE Sales_Order_Item_Id NOT IN (SELECT Sales_Order_Item_Id FROM held_lines);

-- Lines frozen in closed periods that are no longer contract lines (an invoice-as-contract line whose
-- invoice now names an order line) are reversed in O, everything they reported caught up to zero; they
-- are numbered after the contract lines and keep the attributes of their last frozen row.
CREATE OR REPLACE TEMP TABLE vanished_lines AS
WITH close_state AS (
    SELECT index_of_period(max(period)) + 1 AS open_mi FROM closed_periods
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
           arg_max(Ending_Deferred_Expense, Actg_Period) AS deferred_expense,
           arg_max(Sales_Order_Id, Actg_Period) AS Sales_Order_Id,
           arg_max(Reference_Invoice_Number, Actg_Period) AS Reference_Invoice_Number,
           arg_max(Product_Id, Actg_Period) AS Product_Id, arg_max(Product_Code, Actg_Period) AS Product_Code,
           arg_max(Product_Name, Actg_Period) AS Product_Name, arg_max(Class, Actg_Period) AS Class,
           arg_max(Location, Actg_Period) AS Location, arg_max(Department, Actg_Period) AS Department,
           arg_max(Customer_Id, Actg_Period) AS Customer_Id, arg_max(Subsidiary_Id, Actg_Period) AS Subsidiary_Id,
           arg_max(Contract_Date, Actg_Period) AS Contract_Date, arg_max(Currency, Actg_Period) AS Currency,
           arg_max(Revenue_Rule, Actg_Period) AS Revenue_Rule, arg_max(Booking_Amount, Actg_Period) AS Booking_Amount,
           arg_max(Home_Currency, Actg_Period) AS Home_Currency
    FROM frozen_line_periods
    WHERE Sales_Order_Item_Id NOT IN (SELECT Sales_Order_Item_Id FROM order_lines)
    GROUP BY Sales_Order_Item_Id
)
SELECT ((SELECT count(*) FROM period_lines) + row_number() OVER (ORDER BY f.Sales_Order_Item_Id)) * 4294967296 AS line_no,
       f.*, s.open_mi
FROM frozen_totals f CROSS JOIN close_state s
WHERE s.open_mi IS NOT NULL
  AND (revenue <> 0 OR billing <> 0 OR fx <> 0 OR booking <> 0 OR commissions <> 0 OR amortization <> 0
       OR position <> 0 OR position_home <> 0 OR revenue_home <> 0 OR billing_home <> 0 OR fx_home <> 0
       OR commissions_home <> 0 OR amortization_home <> 0 OR deferred_expense <> 0);

-- Each line's attributes as of this computation (one row per line rather than one per line and period).
CREATE OR REPLACE TABLE line_period_lines AS
SELECT line_no, Sales_Order_Id, Sales_Order_Item_Id, Reference_Invoice_Number, Product_Id, Product_Code, Product_Name,
       Class, Location, Department, Customer_Id, Subsidiary_Id, Order_Date AS Contract_Date, Currency, Revenue_Rule,
       Bookings_Amount AS Booking_Amount, '{home}' AS Home_Currency
FROM period_lines
UNION ALL
SELECT line_no, Sales_Order_Id, Sales_Order_Item_Id, Reference_Invoice_Number, Product_Id, Product_Code, Product_Name,
       Class, Location, Department, Customer_Id, Subsidiary_Id, Contract_Date, Currency, Revenue_Rule,
       Booking_Amount, Home_Currency
FROM vanished_lines;

-- Per line: its rows' span and, once periods are closed, what the first open period O starts from.
CREATE OR REPLACE TEMP TABLE period_bounds AS
WITH close_state AS (
    SELECT index_of_period(max(period)) + 1 AS open_mi FROM closed_periods
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
spans AS (
    -- a line's rows run from its first period (booking, service start, first event) to the latest of
    -- the contract's last period and its last event; once periods are closed, from O at the earliest
    SELECT l.line_no, l.Revenue_Rule, l.contract_last_mi, s.open_mi,
           least(l.booking_mi, l.start_mi, coalesce(e.first_event_mi, l.start_mi)) AS first_mi,
           greatest(l.contract_last_mi, coalesce(e.last_event_mi, l.contract_last_mi)) AS last_mi,
           f.Sales_Order_Item_Id IS NOT NULL AS has_frozen,
           coalesce(f.position, 0) AS position_start, coalesce(f.position_home, 0) AS position_home_start,
           coalesce(f.backlog, 0) AS backlog_start, coalesce(f.deferred_expense, 0) AS deferred_expense_start,
           f.revenue AS frozen_revenue, f.billing AS frozen_billing, f.fx AS frozen_fx, f.booking AS frozen_booking,
           f.commissions AS frozen_commissions, f.amortization AS frozen_amortization,
           f.revenue_home AS frozen_revenue_home, f.billing_home AS frozen_billing_home, f.fx_home AS frozen_fx_home,
           f.commissions_home AS frozen_commissions_home, f.amortization_home AS frozen_amortization_home
    FROM period_lines l
    CROSS JOIN close_state s
    LEFT JOIN events e USING (Sales_Order_Item_Id)
    LEFT JOIN frozen_totals f USING (Sales_Order_Item_Id)
)
SELECT *, greatest(last_mi, lo) AS hi
FROM (SELECT *, CASE WHEN open_mi IS NULL THEN first_mi
                     WHEN first_mi <= open_mi OR has_frozen THEN open_mi
                     ELSE first_mi END AS lo
      FROM spans);

CREATE OR REPLACE TABLE line_period_amounts AS
WITH series AS NOT MATERIALIZED (
    SELECT l.line_no, s.* EXCLUDE (Sales_Order_Item_Id)
    FROM line_series s JOIN period_lines l USING (Sales_Order_Item_Id)
),
current_through_open AS (
    SELECT s.line_no,
           sum(revenue) AS revenue, sum(billing) AS billing, sum(fx) AS fx, sum(booking) AS booking,
           sum(commissions) AS commissions, sum(amortization) AS amortization,
           sum(revenue_home) AS revenue_home, sum(billing_home) AS billing_home, sum(fx_home) AS fx_home,
           sum(commissions_home) AS commissions_home, sum(amortization_home) AS amortization_home
    FROM series s JOIN period_bounds b USING (line_no)
    WHERE s.mi <= b.open_mi
    GROUP BY ALL
),
month_flows AS (
    -- the months that have a flow: O reports (current cumulative through O) − (frozen cumulative through
    -- L), every later month its current value
    SELECT b.line_no, b.open_mi AS mi,
           CAST(coalesce(c.revenue, 0) - coalesce(b.frozen_revenue, 0) AS BIGINT) AS revenue,
           CAST(coalesce(c.billing, 0) - coalesce(b.frozen_billing, 0) AS BIGINT) AS billing,
           CAST(coalesce(c.fx, 0) - coalesce(b.frozen_fx, 0) AS BIGINT) AS fx,
           CAST(coalesce(c.booking, 0) - coalesce(b.frozen_booking, 0) AS BIGINT) AS booking,
           CAST(coalesce(c.commissions, 0) - coalesce(b.frozen_commissions, 0) AS BIGINT) AS commissions,
           CAST(coalesce(c.amortization, 0) - coalesce(b.frozen_amortization, 0) AS BIGINT) AS amortization,
           CAST(coalesce(c.revenue_home, 0) - coalesce(b.frozen_revenue_home, 0) AS BIGINT) AS revenue_home,
           CAST(coalesce(c.billing_home, 0) - coalesce(b.frozen_billing_home, 0) AS BIGINT) AS billing_home,
           CAST(coalesce(c.fx_home, 0) - coalesce(b.frozen_fx_home, 0) AS BIGINT) AS fx_home,
           CAST(coalesce(c.commissions_home, 0) - coalesce(b.frozen_commissions_home, 0) AS BIGINT) AS commissions_home,
           CAST(coalesce(c.amortization_home, 0) - coalesce(b.frozen_amortization_home, 0) AS BIGINT) AS amortization_home
    FROM period_bounds b LEFT JOIN current_through_open c USING (line_no)
    WHERE b.lo = b.open_mi
    UNION ALL
    SELECT s.line_no, s.mi, s.revenue, s.billing, s.fx, s.booking, s.commissions, s.amortization,
           s.revenue_home, s.billing_home, s.fx_home, s.commissions_home, s.amortization_home
    FROM series s JOIN period_bounds b USING (line_no)
    WHERE b.open_mi IS NULL OR s.mi > b.open_mi
),
running AS (
    -- running sums over the months with a flow; the months between carry the sums on unchanged
    SELECT *,
           CAST(sum(billing + fx - revenue) OVER w AS BIGINT) AS cum_flow,
           CAST(sum(billing_home + fx_home - revenue_home) OVER w AS BIGINT) AS cum_flow_home,
           CAST(sum(booking - revenue) OVER w AS BIGINT) AS cum_backlog,
           CAST(sum(commissions - amortization) OVER w AS BIGINT) AS cum_expense,
           lead(mi) OVER w AS next_mi,
           lag(mi) OVER w IS NULL AS is_first
    FROM month_flows
    WINDOW w AS (PARTITION BY line_no ORDER BY mi ROWS UNBOUNDED PRECEDING)
),
months AS (
    -- every month of the line's span: a month with a flow, the months up to its next one, and before the
    -- first one, the months from the span's start
    SELECT r.line_no, r.mi AS flow_mi,
           unnest(range(CASE WHEN r.is_first THEN b.lo ELSE r.mi END, coalesce(r.next_mi, b.hi + 1))) AS mi,
           r.* EXCLUDE (line_no, mi, next_mi, is_first)
    FROM running r JOIN period_bounds b USING (line_no)
    UNION ALL BY NAME
    -- lines without any flow in their span
    SELECT b.line_no, NULL AS flow_mi, unnest(range(b.lo, b.hi + 1)) AS mi
    FROM period_bounds b
    WHERE b.line_no NOT IN (SELECT line_no FROM month_flows)
),
month_values AS (
    SELECT m.line_no, m.mi,
           CASE WHEN m.mi = m.flow_mi THEN m.revenue ELSE 0 END AS revenue,
           CASE WHEN m.mi = m.flow_mi THEN m.billing ELSE 0 END AS billing,
           CASE WHEN m.mi = m.flow_mi THEN m.fx ELSE 0 END AS fx,
           CASE WHEN m.mi = m.flow_mi THEN m.booking ELSE 0 END AS booking,
           CASE WHEN m.mi = m.flow_mi THEN m.commissions ELSE 0 END AS commissions,
           CASE WHEN m.mi = m.flow_mi THEN m.amortization ELSE 0 END AS amortization,
           CASE WHEN m.mi = m.flow_mi THEN m.revenue_home ELSE 0 END AS revenue_home,
           CASE WHEN m.mi = m.flow_mi THEN m.billing_home ELSE 0 END AS billing_home,
           CASE WHEN m.mi = m.flow_mi THEN m.fx_home ELSE 0 END AS fx_home,
           CASE WHEN m.mi = m.flow_mi THEN m.commissions_home ELSE 0 END AS commissions_home,
           CASE WHEN m.mi = m.flow_mi THEN m.amortization_home ELSE 0 END AS amortization_home,
           -- running sums through this month (none before the first month with a flow)
           CASE WHEN m.mi >= m.flow_mi THEN m.cum_flow ELSE 0 END AS cum_flow,
           CASE WHEN m.mi >= m.flow_mi THEN m.cum_flow_home ELSE 0 END AS cum_flow_home,
           CASE WHEN m.mi >= m.flow_mi THEN m.cum_backlog ELSE 0 END AS cum_backlog,
           CASE WHEN m.mi >= m.flow_mi THEN m.cum_expense ELSE 0 END AS cum_expense,
           b.Revenue_Rule, b.contract_last_mi, b.first_mi, b.last_mi, b.lo,
           b.position_start, b.position_home_start, b.backlog_start, b.deferred_expense_start
    FROM months m JOIN period_bounds b USING (line_no)
),
positioned AS (
    -- P = unearned − unbilled; from the contract's last period on, the adjustment trues P up to 0.
    -- The previous row is the previous month (a line has every month of its span): its balances are the
    -- running sums without this month's flow.
    SELECT *,
           CASE WHEN mi >= contract_last_mi THEN 0 ELSE position_start + cum_flow END AS position,
           CASE WHEN mi >= contract_last_mi THEN 0 ELSE position_home_start + cum_flow_home END AS position_home,
           backlog_start + cum_backlog AS backlog,
           deferred_expense_start + cum_expense AS deferred_expense,
           CASE WHEN mi = lo THEN position_start WHEN mi - 1 >= contract_last_mi THEN 0
                ELSE position_start + cum_flow - (billing + fx - revenue) END AS prev_position,
           CASE WHEN mi = lo THEN position_home_start WHEN mi - 1 >= contract_last_mi THEN 0
                ELSE position_home_start + cum_flow_home - (billing_home + fx_home - revenue_home) END AS prev_position_home,
           backlog_start + cum_backlog - (booking - revenue) AS prev_backlog,
           deferred_expense_start + cum_expense - (commissions - amortization) AS prev_deferred_expense
    FROM month_values
)
-- (a usage line has no backlog: kept empty, as line_periods shows it)
SELECT line_no, period_of_index(mi) AS Actg_Period,
       revenue, billing, fx, CASE WHEN Revenue_Rule <> 'usage' THEN booking END AS booking, commissions, amortization,
       revenue_home, billing_home, fx_home, commissions_home, amortization_home,
       position, prev_position, position_home, prev_position_home,
       CASE WHEN Revenue_Rule <> 'usage' THEN backlog END AS backlog, deferred_expense
FROM positioned
WHERE mi BETWEEN first_mi AND last_mi
   OR revenue <> 0 OR billing <> 0 OR fx <> 0 OR booking <> 0 OR commissions <> 0 OR amortization <> 0
   OR position <> 0 OR prev_position <> 0 OR position_home <> 0 OR prev_position_home <> 0
   OR backlog <> 0 OR prev_backlog <> 0 OR deferred_expense <> 0 OR prev_deferred_expense <> 0
   OR revenue_home <> 0 OR billing_home <> 0 OR fx_home <> 0
   OR commissions_home <> 0 OR amortization_home <> 0
UNION ALL
-- a vanished line's row in O: every series reversed, its balances taken to zero
SELECT line_no, period_of_index(open_mi),
       CAST(-revenue AS BIGINT), CAST(-billing AS BIGINT), CAST(-fx AS BIGINT),
       CASE WHEN Revenue_Rule <> 'usage' THEN CAST(-booking AS BIGINT) END,
       CAST(-commissions AS BIGINT), CAST(-amortization AS BIGINT),
       CAST(-revenue_home AS BIGINT), CAST(-billing_home AS BIGINT), CAST(-fx_home AS BIGINT),
       CAST(-commissions_home AS BIGINT), CAST(-amortization_home AS BIGINT),
       0, position, 0, position_home,
       CASE WHEN Revenue_Rule <> 'usage' THEN CAST(backlog - booking + revenue AS BIGINT) END,
       CAST(deferred_expense - commissions + amortization AS BIGINT)
FROM vanished_lines;

-- The open rows as line_periods reports them (with line_no, the key journal_lines joins on). A close moves
-- the rows of the periods it freezes from line_period_amounts to frozen_line_periods (sql/close/freeze.sql).
CREATE OR REPLACE VIEW open_line_periods AS
SELECT a.Actg_Period,
       l.Sales_Order_Id, l.Sales_Order_Item_Id, l.Reference_Invoice_Number, l.Product_Id, l.Product_Code,
       l.Product_Name, l.Class, l.Location, l.Department, l.Customer_Id, l.Subsidiary_Id,
       l.Contract_Date, l.Currency, l.Revenue_Rule, l.Booking_Amount,
       greatest(CAST(a.prev_position AS HUGEINT), 0) AS Beginning_Unearned_Revenue,
       CAST(a.billing AS HUGEINT) AS New_Billing, CAST(a.revenue AS HUGEINT) AS Revenue,
       CAST(a.fx AS HUGEINT) AS Foreign_Currency_Change,
       CAST(a.position AS HUGEINT) - a.prev_position - (CAST(a.billing AS HUGEINT) + a.fx - a.revenue)
           AS Adjustment_To_Unearned_Revenue,
       greatest(CAST(a.position AS HUGEINT), 0) AS Ending_Unearned_Revenue,
       greatest(-CAST(a.prev_position AS HUGEINT), 0) AS Beginning_Unbilled_Receivable,
       greatest(-CAST(a.position AS HUGEINT), 0) AS Ending_Unbilled_Receivable,
       CAST(a.position AS HUGEINT) AS Position,
       -- the balances a period begins with are its ending balances less its flows
       CASE WHEN l.Revenue_Rule <> 'usage' THEN CAST(a.backlog AS HUGEINT) - (a.booking - a.revenue) END AS Beginning_Backlog,
       CASE WHEN l.Revenue_Rule <> 'usage' THEN CAST(a.booking AS HUGEINT) END AS New_Booking,
       CASE WHEN l.Revenue_Rule <> 'usage' THEN CAST(a.backlog AS HUGEINT) END AS Ending_Backlog,
       CAST(a.deferred_expense AS HUGEINT) - (a.commissions - a.amortization) AS Beginning_Deferred_Expense,
       CAST(a.commissions AS HUGEINT) AS New_Commissions, CAST(a.amortization AS HUGEINT) AS Commission_Amortization,
       CAST(a.deferred_expense AS HUGEINT) AS Ending_Deferred_Expense,
       l.Home_Currency,
       CAST(a.revenue_home AS HUGEINT) AS Revenue_Home, CAST(a.billing_home AS HUGEINT) AS New_Billing_Home,
       CAST(a.fx_home AS HUGEINT) AS Foreign_Currency_Change_Home,
       CAST(a.position_home AS HUGEINT) - a.prev_position_home - (CAST(a.billing_home AS HUGEINT) + a.fx_home - a.revenue_home)
           AS Adjustment_Home,
       greatest(CAST(a.prev_position_home AS HUGEINT), 0) AS Beginning_Unearned_Home,
       greatest(CAST(a.position_home AS HUGEINT), 0) AS Ending_Unearned_Home,
       greatest(-CAST(a.prev_position_home AS HUGEINT), 0) AS Beginning_Unbilled_Home,
       greatest(-CAST(a.position_home AS HUGEINT), 0) AS Ending_Unbilled_Home,
       CAST(a.position_home AS HUGEINT) AS Position_Home,
       CAST(a.commissions_home AS HUGEINT) AS New_Commissions_Home,
       CAST(a.amortization_home AS HUGEINT) AS Commission_Amortization_Home,
       a.line_no
FROM line_period_amounts a
JOIN line_period_lines l USING (line_no);

CREATE OR REPLACE VIEW line_periods AS
SELECT * FROM frozen_line_periods
UNION ALL BY NAME
SELECT * EXCLUDE (line_no) FROM open_line_periods;
