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

-- the UI metadata's totals summed the rows about to be replaced (sql/metadata/line_period_totals.sql)
DROP TABLE IF EXISTS line_period_totals;

-- The lines that are not held, with the integer keys line_series gave them (line_keys: id order) and
-- their rate into home currency.
CREATE OR REPLACE TEMP TABLE period_lines AS
SELECT k.line_no, k.in_home, k.x_limit, k.num_s, k.den_s, k.num, k.den, l.*
FROM order_lines l JOIN line_keys k USING (Sales_Order_Item_Id);

-- The first open period O (NULL before any close), and per line what the closed periods reported: every
-- series' total through L and the balances of its last frozen row.
CREATE OR REPLACE TEMP TABLE close_state AS
SELECT index_of_period(max(period)) + 1 AS open_mi FROM closed_periods;

CREATE OR REPLACE TEMP TABLE frozen_totals AS
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
FROM frozen_line_periods
GROUP BY Sales_Order_Item_Id;

-- Lines frozen in closed periods that are no longer contract lines (an invoice-as-contract line whose
-- invoice now names an order line) are reversed in O, everything they reported caught up to zero; they
-- are numbered after the contract lines and keep the attributes of their last frozen row.
CREATE OR REPLACE TEMP TABLE vanished_lines AS
WITH last_attributes AS (
    SELECT Sales_Order_Item_Id,
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
),
vanished AS (
    SELECT f.*, a.* EXCLUDE (Sales_Order_Item_Id)
    FROM frozen_totals f JOIN last_attributes a USING (Sales_Order_Item_Id)
)
SELECT ((SELECT count(*) FROM period_lines) + row_number() OVER (ORDER BY f.Sales_Order_Item_Id)) * 4294967296 AS line_no,
       f.*, s.open_mi
FROM vanished f CROSS JOIN close_state s
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
WITH events AS (
    -- invoices, usage and commissions can extend a line's rows beyond its service period
    SELECT Sales_Order_Item_Id, min(mi) AS first_event_mi, max(mi) AS last_event_mi
    FROM (SELECT Sales_Order_Item_Id, mi FROM invoice_events
          UNION ALL SELECT Sales_Order_Item_Id, month_index(Usage_Date) FROM raw_usage WHERE _is_current
          UNION ALL SELECT Sales_Order_Item_Id, month_index(Commission_Date) FROM raw_commissions WHERE _is_current)
    GROUP BY ALL
),
spans AS (
    -- a line's rows run from its first period (booking, service start, first event) to the latest of
    -- the contract's last period and its last event; once periods are closed, from O at the earliest
    SELECT l.line_no, l.Revenue_Rule, l.contract_last_mi, s.open_mi,
           l.Allocated_Revenue AS amount, l.start_mi, l.end_mi, l.booking_mi,
           l.Service_Start_Date AS s, l.Service_End_Date AS e,
           l.in_home, l.x_limit, l.num_s, l.den_s, l.num, l.den,
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

-- Per line, the terms its rows are computed from, in stages (each macro applied to plain columns).
--
-- The schedule's rounded values: a ratable_monthly month is round(A / M) and its last month the remainder; a
-- ratable_daily month is round(A × days / D) — its first month from the start date, later ones whole — and its
-- last month the remainder, A minus the earlier months. Whole months of the same length round alike, so the
-- earlier months are counted by length, not listed: SC(m), what the schedule recognizes in the months ≤ m, is
-- the first month's value plus, per length n (28, 29, 30, 31 days), the whole months of that length times
-- round(A × n / D).
--
-- Once periods are closed and the line's rows start at the first open period O, O reports (current cumulative
-- through O) − (frozen cumulative through L): its own month's current value plus `fold`, what the current
-- schedule (SC(lo − 1)) and events hold before O less what the closed periods reported. Zero for every line
-- before any close.
CREATE OR REPLACE TEMP TABLE line_terms AS
WITH events_before AS (
    SELECT s.line_no,
           sum(s.revenue) AS revenue, sum(s.billing) AS billing, sum(s.fx) AS fx, sum(s.commissions) AS commissions,
           sum(s.amortization) AS amortization, sum(s.revenue_home) AS revenue_home, sum(s.billing_home) AS billing_home,
           sum(s.fx_home) AS fx_home, sum(s.commissions_home) AS commissions_home,
           sum(s.amortization_home) AS amortization_home
    FROM line_series_amounts s
    JOIN (SELECT line_no, lo FROM period_bounds WHERE open_mi IS NOT NULL) b USING (line_no)
    WHERE s.mi < b.lo
    GROUP BY s.line_no
),
shape AS (
    SELECT b.*, e.revenue AS ev_revenue, e.billing AS ev_billing, e.fx AS ev_fx, e.commissions AS ev_commissions,
           e.amortization AS ev_amortization, e.revenue_home AS ev_revenue_home, e.billing_home AS ev_billing_home,
           e.fx_home AS ev_fx_home, e.commissions_home AS ev_commissions_home,
           e.amortization_home AS ev_amortization_home,
           b.Revenue_Rule = 'ratable_daily' AND b.start_mi < b.end_mi AS daily_split,
           b.e - b.s + 1 AS days, CAST(month_start(b.start_mi + 1) AS DATE) - b.s AS first_days,
           least(b.lo, b.end_mi) AS cut
    FROM period_bounds b
    LEFT JOIN events_before e USING (line_no)
),
rounded AS (
    SELECT *,
           round_part(amount, end_mi - start_mi + 1) AS monthly,
           CASE WHEN daily_split THEN round_share(amount, first_days, days) END AS first_value,
           CASE WHEN daily_split THEN round_share(amount, 28, days) END AS v28,
           CASE WHEN daily_split THEN round_share(amount, 29, days) END AS v29,
           CASE WHEN daily_split THEN round_share(amount, 30, days) END AS v30,
           CASE WHEN daily_split THEN round_share(amount, 31, days) END AS v31,
           -- whole months start + 1 … end − 1 and start + 1 … lo − 1 by length
           CASE WHEN daily_split THEN februaries(start_mi + 1, end_mi - 1) END AS end_feb,
           CASE WHEN daily_split THEN leap_februaries(start_mi + 1, end_mi - 1) END AS end_29,
           CASE WHEN daily_split THEN months_of_30(start_mi + 1, end_mi - 1) END AS end_30,
           CASE WHEN daily_split THEN februaries(start_mi + 1, cut - 1) END AS lo_feb,
           CASE WHEN daily_split THEN leap_februaries(start_mi + 1, cut - 1) END AS lo_29,
           CASE WHEN daily_split THEN months_of_30(start_mi + 1, cut - 1) END AS lo_30
    FROM shape
),
homes AS (
    SELECT *,
           to_home(monthly, in_home, x_limit, num_s, den_s, num, den) AS monthly_home0, to_home(first_value, in_home, x_limit, num_s, den_s, num, den) AS first_value_home,
           to_home(v28, in_home, x_limit, num_s, den_s, num, den) AS h28, to_home(v29, in_home, x_limit, num_s, den_s, num, den) AS h29, to_home(v30, in_home, x_limit, num_s, den_s, num, den) AS h30, to_home(v31, in_home, x_limit, num_s, den_s, num, den) AS h31,
           to_home(amount, in_home, x_limit, num_s, den_s, num, den) AS amount_home,
           -- the sums of the months start … end − 1 and of those before lo (ratable_daily)
           first_value + (end_feb - end_29) * v28 + end_29 * v29 + end_30 * v30
               + (end_mi - 1 - start_mi - end_feb - end_30) * v31 AS before_end,
           CASE WHEN start_mi < cut THEN first_value ELSE 0 END + (lo_feb - lo_29) * v28 + lo_29 * v29 + lo_30 * v30
               + (greatest(cut - 1 - start_mi, 0) - lo_feb - lo_30) * v31 AS before_lo
    FROM rounded
),
lasts AS (
    SELECT *,
           CASE WHEN Revenue_Rule = 'ratable_monthly' THEN amount - (end_mi - start_mi) * monthly
                WHEN daily_split THEN amount - before_end
                ELSE amount END AS last_month,
           CASE WHEN start_mi < cut THEN first_value_home ELSE 0 END + (lo_feb - lo_29) * h28 + lo_29 * h29
               + lo_30 * h30 + (greatest(cut - 1 - start_mi, 0) - lo_feb - lo_30) * h31 AS before_lo_home
    FROM homes
),
schedule_before AS (
    SELECT *,
           to_home(last_month, in_home, x_limit, num_s, den_s, num, den) AS last_home,
           -- SC(lo − 1)
           CASE WHEN Revenue_Rule = 'usage' OR lo <= start_mi THEN 0
                WHEN Revenue_Rule = 'point_in_time' THEN amount
                WHEN lo > end_mi THEN amount
                WHEN Revenue_Rule = 'ratable_monthly' THEN (lo - start_mi) * monthly
                ELSE before_lo END AS schedule_before
    FROM lasts
),
schedule_home AS (
    SELECT *,
           CASE WHEN Revenue_Rule = 'usage' OR lo <= start_mi THEN 0
                WHEN Revenue_Rule = 'point_in_time' THEN amount_home
                WHEN Revenue_Rule = 'ratable_monthly'
                THEN (least(lo, end_mi) - start_mi) * monthly_home0 + CASE WHEN lo > end_mi THEN last_home ELSE 0 END
                ELSE coalesce(before_lo_home, 0) + CASE WHEN lo > end_mi THEN last_home ELSE 0 END
                END AS schedule_before_home
    FROM schedule_before
)
SELECT line_no, Revenue_Rule, amount, start_mi, booking_mi, lo, hi,
       contract_last_mi, first_mi, last_mi, position_start, position_home_start, backlog_start, deferred_expense_start,
       CAST(schedule_before AS BIGINT) AS sc_before, CAST(schedule_before_home AS BIGINT) AS sc_before_home,
       CAST(schedule_before + coalesce(ev_revenue, 0) - coalesce(frozen_revenue, 0) AS BIGINT) AS fold_revenue,
       CAST(coalesce(ev_billing, 0) - coalesce(frozen_billing, 0) AS BIGINT) AS fold_billing,
       CAST(coalesce(ev_fx, 0) - coalesce(frozen_fx, 0) AS BIGINT) AS fold_fx,
       CAST(CASE WHEN Revenue_Rule <> 'usage' AND booking_mi < lo THEN amount ELSE 0 END
            - coalesce(frozen_booking, 0) AS BIGINT) AS fold_booking,
       CAST(coalesce(ev_commissions, 0) - coalesce(frozen_commissions, 0) AS BIGINT) AS fold_commissions,
       CAST(coalesce(ev_amortization, 0) - coalesce(frozen_amortization, 0) AS BIGINT) AS fold_amortization,
       CAST(schedule_before_home + coalesce(ev_revenue_home, 0) - coalesce(frozen_revenue_home, 0) AS BIGINT)
           AS fold_revenue_home,
       CAST(coalesce(ev_billing_home, 0) - coalesce(frozen_billing_home, 0) AS BIGINT) AS fold_billing_home,
       CAST(coalesce(ev_fx_home, 0) - coalesce(frozen_fx_home, 0) AS BIGINT) AS fold_fx_home,
       CAST(coalesce(ev_commissions_home, 0) - coalesce(frozen_commissions_home, 0) AS BIGINT) AS fold_commissions_home,
       CAST(coalesce(ev_amortization_home, 0) - coalesce(frozen_amortization_home, 0) AS BIGINT) AS fold_amortization_home,
       -- The schedule in one form for every rule, so that a row's value is arithmetic with no branch on the rule
       -- (q_start is start_mi): q_first in month q_start when the span has more than one month; per whole month
       -- q_start + 1 … q_end − 1 the value for its length (q_v31, less q_d30 for 30 days, less q_d28 for
       -- February, plus q_d29 for a leap February); q_last in month q_end. A ratable_daily line's are its own; a
       -- ratable_monthly line's are all its monthly value but the last; a point_in_time line recognizes its
       -- amount as the last month of a one-month span; a usage line's are zero (its revenue is its usage, an
       -- event).
       CASE WHEN Revenue_Rule = 'point_in_time' THEN start_mi ELSE end_mi END AS q_end,
       CAST(CASE WHEN Revenue_Rule = 'ratable_monthly' AND start_mi < end_mi THEN monthly
                 WHEN daily_split THEN first_value ELSE 0 END AS BIGINT) AS q_first,
       CAST(CASE WHEN Revenue_Rule = 'ratable_monthly' THEN monthly WHEN daily_split THEN v31 ELSE 0 END
            AS BIGINT) AS q_v31,
       CAST(CASE WHEN daily_split THEN v31 - v28 ELSE 0 END AS BIGINT) AS q_d28,
       CAST(CASE WHEN daily_split THEN v29 - v28 ELSE 0 END AS BIGINT) AS q_d29,
       CAST(CASE WHEN daily_split THEN v31 - v30 ELSE 0 END AS BIGINT) AS q_d30,
       CAST(CASE WHEN Revenue_Rule = 'usage' THEN 0 WHEN Revenue_Rule = 'point_in_time' THEN amount
                 ELSE last_month END AS BIGINT) AS q_last,
       CAST(CASE WHEN Revenue_Rule = 'ratable_monthly' AND start_mi < end_mi THEN monthly_home0
                 WHEN daily_split THEN first_value_home ELSE 0 END AS BIGINT) AS q_first_home,
       CAST(CASE WHEN Revenue_Rule = 'ratable_monthly' THEN monthly_home0 WHEN daily_split THEN h31 ELSE 0 END
            AS BIGINT) AS q_v31_home,
       CAST(CASE WHEN daily_split THEN h31 - h28 ELSE 0 END AS BIGINT) AS q_d28_home,
       CAST(CASE WHEN daily_split THEN h29 - h28 ELSE 0 END AS BIGINT) AS q_d29_home,
       CAST(CASE WHEN daily_split THEN h31 - h30 ELSE 0 END AS BIGINT) AS q_d30_home,
       CAST(CASE WHEN Revenue_Rule = 'usage' THEN 0 WHEN Revenue_Rule = 'point_in_time' THEN amount_home
                 ELSE last_home END AS BIGINT) AS q_last_home,
       -- the calendar counts through q_start, which a row's counts are taken from
       februaries_through(start_mi) AS q_start_februaries,
       leap_februaries_through(start_mi) AS q_start_leap_februaries,
       thirties_through(start_mi) AS q_start_thirties
FROM schedule_home;

-- The events of line_series from each line's first row on (earlier ones are in the fold), with their running
-- sums and the month of the next one: each event starts a segment of months that carry its running sums.
CREATE OR REPLACE TEMP TABLE event_segments AS
SELECT s.line_no, s.mi, coalesce(lead(s.mi) OVER w, t.hi + 1) - 1 AS segment_end, row_number() OVER w = 1 AS is_first,
       s.revenue, s.billing, s.fx, s.commissions, s.amortization,
       s.revenue_home, s.billing_home, s.fx_home, s.commissions_home, s.amortization_home,
       CAST(sum(s.billing + s.fx - s.revenue) OVER w AS BIGINT) AS events_flow,
       CAST(sum(s.billing_home + s.fx_home - s.revenue_home) OVER w AS BIGINT) AS events_flow_home,
       CAST(sum(s.revenue) OVER w AS BIGINT) AS events_revenue,
       CAST(sum(s.commissions - s.amortization) OVER w AS BIGINT) AS events_expense
FROM line_series_amounts s
JOIN (SELECT line_no, lo, hi FROM line_terms) t USING (line_no)
WHERE s.mi >= t.lo
WINDOW w AS (PARTITION BY s.line_no ORDER BY s.mi ROWS UNBOUNDED PRECEDING);

-- What the largest statement below does not read leaves memory to it.
DROP TABLE temp.main.period_bounds;
DROP TABLE temp.main.period_lines;
DROP TABLE temp.main.frozen_totals;

-- Every month lo … hi of each line, computed row by row with no pass over other rows: a month's flows are
-- the schedule's value (revenue by the line's rule, the booking), its events (the first month of an
-- event segment) and, in the first row, the fold; its balances are the starting balances plus the running
-- sums through the month — the events' from their segment, the schedule's by arithmetic: SC(m), what the
-- schedule recognizes in the months ≤ m, less SC(lo − 1), which the fold holds.
-- Columns that are zero in nearly every row by construction (a booking is one month of a line, an adjustment
-- falls only from the contract's last period on, a commission is an event, an FX change only arises between
-- an invoice's currency and its line's) are stored run-length encoded: DuckDB would otherwise try bit-packing
-- on each of them, at 1M lines ~0.6 s of this statement's write (BENCHMARKS.md), to choose RLE anyway.
CREATE OR REPLACE TABLE line_period_amounts (
    line_no BIGINT, Actg_Period INTEGER,
    revenue BIGINT, billing BIGINT, fx BIGINT USING COMPRESSION rle, booking BIGINT USING COMPRESSION rle,
    commissions BIGINT USING COMPRESSION rle, amortization BIGINT,
    revenue_home BIGINT, billing_home BIGINT, fx_home BIGINT USING COMPRESSION rle,
    commissions_home BIGINT USING COMPRESSION rle, amortization_home BIGINT,
    position BIGINT, adjustment BIGINT USING COMPRESSION rle,
    position_home BIGINT, adjustment_home BIGINT USING COMPRESSION rle,
    backlog BIGINT, deferred_expense BIGINT
);
INSERT INTO line_period_amounts
WITH segments AS (
    SELECT line_no, mi AS segment_start, segment_end, true AS has_events,
           revenue, billing, fx, commissions, amortization,
           revenue_home, billing_home, fx_home, commissions_home, amortization_home,
           events_flow, events_flow_home, events_revenue, events_expense
    FROM event_segments
    UNION ALL
    -- before a line's first event (every month, for a line without events)
    SELECT t.line_no, t.lo, coalesce(f.mi, t.hi + 1) - 1, false, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
    FROM line_terms t
    LEFT JOIN (SELECT line_no, mi FROM event_segments WHERE is_first) f USING (line_no)
),
segment_terms AS (
    -- per segment, narrowed to what its months need: the flows of its first month (its events, and the
    -- fold when it is the line's first row), the balances it starts from before the schedule (starting
    -- balance + fold + SC(lo − 1) + its events' running sums), and the line's schedule terms
    SELECT g.line_no, g.segment_start, g.segment_end,
           (CASE WHEN g.segment_start = t.lo THEN t.fold_revenue ELSE 0 END) + g.revenue AS s_revenue,
           (CASE WHEN g.segment_start = t.lo THEN t.fold_billing ELSE 0 END) + g.billing AS s_billing,
           (CASE WHEN g.segment_start = t.lo THEN t.fold_fx ELSE 0 END) + g.fx AS s_fx,
           CASE WHEN g.segment_start = t.lo THEN t.fold_booking ELSE 0 END AS s_booking,
           (CASE WHEN g.segment_start = t.lo THEN t.fold_commissions ELSE 0 END) + g.commissions AS s_commissions,
           (CASE WHEN g.segment_start = t.lo THEN t.fold_amortization ELSE 0 END) + g.amortization AS s_amortization,
           (CASE WHEN g.segment_start = t.lo THEN t.fold_revenue_home ELSE 0 END) + g.revenue_home AS s_revenue_home,
           (CASE WHEN g.segment_start = t.lo THEN t.fold_billing_home ELSE 0 END) + g.billing_home AS s_billing_home,
           (CASE WHEN g.segment_start = t.lo THEN t.fold_fx_home ELSE 0 END) + g.fx_home AS s_fx_home,
           (CASE WHEN g.segment_start = t.lo THEN t.fold_commissions_home ELSE 0 END) + g.commissions_home
               AS s_commissions_home,
           (CASE WHEN g.segment_start = t.lo THEN t.fold_amortization_home ELSE 0 END) + g.amortization_home
               AS s_amortization_home,
           t.position_start + t.fold_billing + t.fold_fx - t.fold_revenue + t.sc_before + g.events_flow AS base_flow,
           t.position_home_start + t.fold_billing_home + t.fold_fx_home - t.fold_revenue_home + t.sc_before_home
               + g.events_flow_home AS base_flow_home,
           t.backlog_start + t.fold_booking - t.fold_revenue + t.sc_before - g.events_revenue AS base_backlog,
           t.deferred_expense_start + t.fold_commissions - t.fold_amortization + g.events_expense AS base_expense,
           t.Revenue_Rule = 'usage' AS is_usage,
           CASE WHEN t.Revenue_Rule = 'usage' THEN 0 ELSE t.amount END AS booked,
           t.start_mi AS q_start, t.q_end, t.booking_mi, t.lo, t.contract_last_mi, t.first_mi, t.last_mi,
           t.q_first, t.q_v31, t.q_d28, t.q_d29, t.q_d30, t.q_last,
           t.q_first_home, t.q_v31_home, t.q_d28_home, t.q_d29_home, t.q_d30_home, t.q_last_home,
           t.q_start_februaries, t.q_start_leap_februaries, t.q_start_thirties
    FROM segments g JOIN line_terms t USING (line_no)
),
month_rows AS (
    -- every month of the segment; w, the last whole month of the schedule counted in SC(mi): mi clamped to
    -- q_start … q_end − 1; the whole months q_start + 1 … w by length; the length of month mi
    SELECT *,
           februaries_through(w) - q_start_februaries AS whole_februaries,
           leap_februaries_through(w) - q_start_leap_februaries AS whole_leap_februaries,
           thirties_through(w) - q_start_thirties AS whole_thirties,
           CAST(mi % 12 = 1 AS BIGINT) AS is_feb,
           CAST(mi % 12 IN (3, 5, 8, 10) AS BIGINT) AS is_30,
           CAST(mi % 12 = 1 AND is_leap_year(mi // 12) AS BIGINT) AS is_29
    FROM (SELECT *, greatest(least(mi, q_end - 1), q_start) AS w
          FROM (SELECT *, unnest(range(segment_start, segment_end + 1)) AS mi FROM segment_terms))
),
valued AS (
    -- The schedule's value of the month and SC(m), what it recognizes in the months ≤ m, in line and home
    -- currency, by arithmetic alone (a branch per row and rule costs more than the terms that are zero):
    --   value(m) = q_first if m = q_start, the whole month's value for its length if q_start < m < q_end,
    --              q_last if m = q_end, else 0
    --   SC(m)    = [m ≥ q_start] × (q_first + Σ of the whole months q_start + 1 … w, counted by length)
    --              + [m ≥ q_end] × q_last.
    -- Per length: a whole month is worth q_v31, less q_d30 for 30 days, less q_d28 for February, plus q_d29 for a
    -- leap February; the whole months q_start + 1 … w count w − q_start, of which whole_februaries Februaries,
    -- whole_leap_februaries of 29 days and whole_thirties of 30 days.
    SELECT *,
           CAST(mi = q_start AS BIGINT) * q_first
               + CAST(mi > q_start AND mi < q_end AS BIGINT)
                 * (q_v31 - is_30 * q_d30 - is_feb * q_d28 + is_29 * q_d29)
               + CAST(mi = q_end AS BIGINT) * q_last AS sched,
           CAST(mi = q_start AS BIGINT) * q_first_home
               + CAST(mi > q_start AND mi < q_end AS BIGINT)
                 * (q_v31_home - is_30 * q_d30_home - is_feb * q_d28_home + is_29 * q_d29_home)
               + CAST(mi = q_end AS BIGINT) * q_last_home AS sched_home,
           CAST(mi >= q_start AS BIGINT)
               * (q_first + (w - q_start) * q_v31 - whole_thirties * q_d30
                  - whole_februaries * q_d28
                  + whole_leap_februaries * q_d29)
               + CAST(mi >= q_end AS BIGINT) * q_last AS sc,
           CAST(mi >= q_start AS BIGINT)
               * (q_first_home + (w - q_start) * q_v31_home
                  - whole_thirties * q_d30_home
                  - whole_februaries * q_d28_home
                  + whole_leap_februaries * q_d29_home)
               + CAST(mi >= q_end AS BIGINT) * q_last_home AS sc_home,
           CAST(mi = segment_start AS BIGINT) AS at_segment_start
    FROM month_rows
),
balances AS (
    -- the month's flows, and the balances after it: the segment's base less the schedule through the month
    SELECT line_no, mi, lo, contract_last_mi, first_mi, last_mi, is_usage,
           sched + at_segment_start * s_revenue AS m_revenue,
           at_segment_start * s_billing AS m_billing,
           at_segment_start * s_fx AS m_fx,
           CAST(mi = booking_mi AS BIGINT) * booked + at_segment_start * s_booking AS m_booking,
           at_segment_start * s_commissions AS m_commissions,
           at_segment_start * s_amortization AS m_amortization,
           sched_home + at_segment_start * s_revenue_home AS m_revenue_home,
           at_segment_start * s_billing_home AS m_billing_home,
           at_segment_start * s_fx_home AS m_fx_home,
           at_segment_start * s_commissions_home AS m_commissions_home,
           at_segment_start * s_amortization_home AS m_amortization_home,
           base_flow - sc AS cum_flow,
           base_flow_home - sc_home AS cum_flow_home,
           base_backlog + CAST(booking_mi BETWEEN lo AND mi AS BIGINT) * booked - sc AS cum_backlog,
           base_expense AS cum_expense
    FROM valued
),
positioned AS (
    -- from the contract's last period on, the adjustment trues P up to 0: the position before the month is
    -- the one after it less its flows (the previous month's: a line has every month of its span), so the
    -- adjustment is −(the running flow) in the contract's last period (or the line's first row after it) and
    -- −(the month's flows) later. The adjustment is stored rather than the position before the month: it is
    -- zero in nearly every row, so it costs little to write, and the view derives the position before from it.
    SELECT line_no, mi, first_mi, last_mi, is_usage,
           m_revenue AS revenue, m_billing AS billing, m_fx AS fx, m_booking AS booking, m_commissions AS commissions,
           m_amortization AS amortization, m_revenue_home AS revenue_home, m_billing_home AS billing_home,
           m_fx_home AS fx_home, m_commissions_home AS commissions_home, m_amortization_home AS amortization_home,
           before_end * cum_flow AS position,
           before_end * cum_flow_home AS position_home,
           -(after_first * (m_billing + m_fx - m_revenue) + at_first * cum_flow) AS adjustment,
           -(after_first * (m_billing_home + m_fx_home - m_revenue_home) + at_first * cum_flow_home) AS adjustment_home,
           cum_backlog AS backlog,
           cum_expense AS deferred_expense
    FROM (
        -- before the contract's last period; in the first row from it on; after that row (as 0 / 1 factors)
        SELECT *, CAST(mi < contract_last_mi AS BIGINT) AS before_end,
               CAST(mi >= contract_last_mi AND NOT (mi > lo AND mi > contract_last_mi) AS BIGINT) AS at_first,
               CAST(mi > lo AND mi > contract_last_mi AS BIGINT) AS after_first
        FROM balances)
)
-- (a usage line has no backlog: kept empty, as line_periods shows it)
SELECT line_no, period_of_index(mi) AS Actg_Period,
       CAST(revenue AS BIGINT) AS revenue, CAST(billing AS BIGINT) AS billing, CAST(fx AS BIGINT) AS fx,
       CAST(CASE WHEN NOT is_usage THEN booking END AS BIGINT) AS booking,
       CAST(commissions AS BIGINT) AS commissions, CAST(amortization AS BIGINT) AS amortization,
       CAST(revenue_home AS BIGINT) AS revenue_home, CAST(billing_home AS BIGINT) AS billing_home,
       CAST(fx_home AS BIGINT) AS fx_home, CAST(commissions_home AS BIGINT) AS commissions_home,
       CAST(amortization_home AS BIGINT) AS amortization_home,
       position, CAST(adjustment AS BIGINT) AS adjustment, position_home,
       CAST(adjustment_home AS BIGINT) AS adjustment_home,
       CAST(CASE WHEN NOT is_usage THEN backlog END AS BIGINT) AS backlog, deferred_expense
FROM positioned
-- every month of the line's span; outside it, a month with a flow or a balance before or after it
WHERE mi BETWEEN first_mi AND last_mi
   OR revenue <> 0 OR billing <> 0 OR fx <> 0 OR booking <> 0 OR commissions <> 0 OR amortization <> 0
   OR position <> 0 OR position - (billing + fx - revenue) - adjustment <> 0
   OR position_home <> 0 OR position_home - (billing_home + fx_home - revenue_home) - adjustment_home <> 0
   OR backlog <> 0 OR backlog - (booking - revenue) <> 0
   OR deferred_expense <> 0 OR deferred_expense - (commissions - amortization) <> 0
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
       -- the position goes to 0 with no flow but the reversals: the adjustment is what remains
       0, CAST(-position + billing + fx - revenue AS BIGINT), 0, CAST(-position_home + billing_home + fx_home - revenue_home AS BIGINT),
       CASE WHEN Revenue_Rule <> 'usage' THEN CAST(backlog - booking + revenue AS BIGINT) END,
       CAST(deferred_expense - commissions + amortization AS BIGINT)
FROM vanished_lines;

-- The open rows as line_periods reports them (with line_no, the key journal_lines joins on), assembled from
-- an amounts table and a lines table: the view below names the stored ones; the continuous export names its
-- candidates' rows of both (lib/continuous.py), so that the join reads only those. A close moves the rows of
-- the periods it freezes from line_period_amounts to frozen_line_periods (sql/close/freeze.sql).
CREATE OR REPLACE MACRO open_line_period_rows(amounts, lines) AS TABLE
SELECT a.Actg_Period,
       l.Sales_Order_Id, l.Sales_Order_Item_Id, l.Reference_Invoice_Number, l.Product_Id, l.Product_Code,
       l.Product_Name, l.Class, l.Location, l.Department, l.Customer_Id, l.Subsidiary_Id,
       l.Contract_Date, l.Currency, l.Revenue_Rule, l.Booking_Amount,
       greatest(CAST(a.prev_position AS HUGEINT), 0) AS Beginning_Unearned_Revenue,
       CAST(a.billing AS HUGEINT) AS New_Billing, CAST(a.revenue AS HUGEINT) AS Revenue,
       CAST(a.fx AS HUGEINT) AS Foreign_Currency_Change,
       CAST(a.adjustment AS HUGEINT) AS Adjustment_To_Unearned_Revenue,
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
       CAST(a.adjustment_home AS HUGEINT) AS Adjustment_Home,
       greatest(CAST(a.prev_position_home AS HUGEINT), 0) AS Beginning_Unearned_Home,
       greatest(CAST(a.position_home AS HUGEINT), 0) AS Ending_Unearned_Home,
       greatest(-CAST(a.prev_position_home AS HUGEINT), 0) AS Beginning_Unbilled_Home,
       greatest(-CAST(a.position_home AS HUGEINT), 0) AS Ending_Unbilled_Home,
       CAST(a.position_home AS HUGEINT) AS Position_Home,
       CAST(a.commissions_home AS HUGEINT) AS New_Commissions_Home,
       CAST(a.amortization_home AS HUGEINT) AS Commission_Amortization_Home,
       a.line_no
FROM (
    -- the position before the period: the position after it less its flows and its adjustment
    SELECT *,
           CAST(position AS HUGEINT) - (CAST(billing AS HUGEINT) + fx - revenue) - adjustment AS prev_position,
           CAST(position_home AS HUGEINT) - (CAST(billing_home AS HUGEINT) + fx_home - revenue_home) - adjustment_home
               AS prev_position_home
    FROM query_table(amounts)
) a
JOIN query_table(lines) l USING (line_no);

CREATE OR REPLACE VIEW open_line_periods AS
SELECT * FROM open_line_period_rows('line_period_amounts', 'line_period_lines');

CREATE OR REPLACE VIEW line_periods AS
SELECT * FROM frozen_line_periods
UNION ALL BY NAME
SELECT * EXCLUDE (line_no) FROM open_line_periods;
