-- line_series: the current ("ideal") value of every series per contract line and month (SPEC §4), in the
-- line's currency and in home currency, before the closed-period rule is applied. Sparse: a month
-- appears only where some series has a value.

-- Exact rounding without HUGEINT division where nothing can overflow (a HUGEINT division costs about
-- fifty BIGINT ones); the schema's rdiv otherwise, so every result is the one rdiv gives.
-- round(n / d) half away from zero, for BIGINT n > -2^63 and 1 ≤ d ≤ 2^62: q + (2r ≥ d), q, r of |n| / d.
CREATE OR REPLACE TEMP MACRO rdiv_i64(n, d) AS (
    CASE WHEN n >= 0 THEN n // d + CASE WHEN 2 * (n % d) >= d THEN 1 ELSE 0 END
         ELSE -((-n) // d + CASE WHEN 2 * ((-n) % d) >= d THEN 1 ELSE 0 END) END);
-- round(a × k / d): a an amount in cents, 0 ≤ k ≤ 31 days of a month
CREATE OR REPLACE TEMP MACRO round_share(a, k, d) AS (
    CASE WHEN a BETWEEN -288230376151711743 AND 288230376151711743 AND k BETWEEN 0 AND 31
              AND d BETWEEN 1 AND 4611686018427387903
         THEN rdiv_i64(a * k, d)
         ELSE CAST(rdiv(CAST(a AS HUGEINT) * k, d) AS BIGINT) END);
-- round(a / m)
CREATE OR REPLACE TEMP MACRO round_part(a, m) AS (
    CASE WHEN a BETWEEN -4611686018427387903 AND 4611686018427387903 AND m BETWEEN 1 AND 4611686018427387903
         THEN rdiv_i64(a, m)
         ELSE CAST(rdiv(a, m) AS BIGINT) END);

-- An integer per contract line: grouping and joining on it is much cheaper than on the text id.
-- Integer keys are spread 2^32 apart: DuckDB 2.0.0 joins a dense integer key with its perfect hash join,
-- whose dictionary output makes some later operators fail ("INTERNAL Error: dict-surviving cache: global
-- dictionary column … changed identity"); a sparse key is joined by hashing, as fast here and safe.
CREATE OR REPLACE TEMP TABLE line_keys AS
SELECT Sales_Order_Item_Id, row_number() OVER () * 4294967296 AS line_no
FROM (SELECT DISTINCT Sales_Order_Item_Id FROM order_lines);

CREATE OR REPLACE TEMP TABLE schedule_inputs AS
SELECT row_number() OVER () * 4294967296 AS input_no, k.line_no, i.*
FROM (
    -- revenue of non-usage lines follows their rule over the service period
    SELECT 'revenue' AS series, Sales_Order_Item_Id, '' AS owner_key, CAST(NULL AS INTEGER) AS catch_up_mi,
           Allocated_Revenue AS amount, Revenue_Rule, Service_Start_Date AS s, Service_End_Date AS e, start_mi, end_mi
    FROM order_lines
    WHERE Revenue_Rule <> 'usage' AND Sales_Order_Item_Id NOT IN (SELECT Sales_Order_Item_Id FROM held_lines)
    UNION ALL
    -- each commission amortizes on its line's pattern; what falls before its own month is caught up there
    SELECT 'amortization', c.Sales_Order_Item_Id, CAST(c.Commission_Date AS VARCHAR), month_index(c.Commission_Date), cents(c.Amount),
           -- a usage line expenses its commission at once, in the commission's own month
           CASE WHEN l.Revenue_Rule = 'usage' THEN 'point_in_time' ELSE l.Revenue_Rule END,
           l.Service_Start_Date, l.Service_End_Date,
           CASE WHEN l.Revenue_Rule = 'usage' THEN month_index(c.Commission_Date) ELSE l.start_mi END,
           CASE WHEN l.Revenue_Rule = 'usage' THEN month_index(c.Commission_Date) ELSE l.end_mi END
    FROM raw_commissions c JOIN order_lines l USING (Sales_Order_Item_Id)
    WHERE c._is_current AND c.Sales_Order_Item_Id NOT IN (SELECT Sales_Order_Item_Id FROM held_lines)
) i
JOIN line_keys k USING (Sales_Order_Item_Id);

-- Ratable schedules: every month's ideal value, then per schedule the sum of its months, from which its
-- last month takes the remainder. The first and last day of each month come from a small calendar.
CREATE OR REPLACE TEMP TABLE schedule_months AS
SELECT mi, month_start(mi) AS first_day, CAST(month_start(mi + 1) AS DATE) - 1 AS last_day
FROM range((SELECT coalesce(min(start_mi), 0) FROM schedule_inputs),
           (SELECT coalesce(max(end_mi), -1) FROM schedule_inputs) + 1) t(mi);

CREATE OR REPLACE TEMP TABLE ratable_months AS
SELECT x.input_no, x.line_no, x.series, x.catch_up_mi, x.mi, x.mi = x.end_mi AS is_last,
       CASE WHEN x.Revenue_Rule = 'ratable_daily'
            -- round(A × days_in(p) / D)
            THEN round_share(x.amount, least(x.e, m.last_day) - greatest(x.s, m.first_day) + 1, x.e - x.s + 1)
            -- round(A / M)
            ELSE round_part(x.amount, x.end_mi - x.start_mi + 1) END AS ideal
FROM (SELECT input_no, line_no, series, catch_up_mi, amount, Revenue_Rule, s, e, start_mi, end_mi,
             unnest(range(start_mi, end_mi + 1)) AS mi
      FROM schedule_inputs WHERE Revenue_Rule IN ('ratable_daily', 'ratable_monthly')) x
JOIN schedule_months m USING (mi);

CREATE OR REPLACE TEMP TABLE ratable_remainders AS
-- the period of the end gets A minus the sum of all earlier periods (of the line's schedules of the series)
SELECT i.input_no, i.amount - (sum(t.total) OVER (PARTITION BY i.series, i.Sales_Order_Item_Id, i.owner_key)) AS remainder
FROM schedule_inputs i
JOIN (SELECT input_no, sum(ideal) AS total FROM ratable_months GROUP BY input_no) t USING (input_no);

CREATE OR REPLACE TABLE line_series AS
WITH schedule AS (
    SELECT line_no, greatest(mi, coalesce(catch_up_mi, mi)) AS mi, series, ideal AS value
    FROM ratable_months WHERE NOT is_last
    UNION ALL
    SELECT m.line_no, greatest(m.mi, coalesce(m.catch_up_mi, m.mi)), m.series, CAST(r.remainder + m.ideal AS BIGINT)
    FROM ratable_months m JOIN ratable_remainders r USING (input_no)
    WHERE m.is_last
    UNION ALL
    SELECT line_no, greatest(start_mi, coalesce(catch_up_mi, start_mi)), series, amount
    FROM schedule_inputs WHERE Revenue_Rule = 'point_in_time'
),
flows AS (
    SELECT line_no, mi,
           CASE WHEN series = 'revenue' THEN value ELSE 0 END AS revenue, 0 AS billing, 0 AS fx, 0 AS booking,
           0 AS commissions, CASE WHEN series = 'amortization' THEN value ELSE 0 END AS amortization
    FROM schedule
    UNION ALL
    -- usage lines: revenue is the usage dated in the month
    SELECT k.line_no, month_index(u.Usage_Date), cents(u.Amount), 0, 0, 0, 0, 0
    FROM raw_usage u JOIN order_lines l USING (Sales_Order_Item_Id) JOIN line_keys k USING (Sales_Order_Item_Id)
    WHERE u._is_current AND l.Revenue_Rule = 'usage'
    UNION ALL
    SELECT k.line_no, mi, 0, New_Billing, Foreign_Currency_Change, 0, 0, 0
    FROM invoice_events JOIN line_keys k USING (Sales_Order_Item_Id)
    UNION ALL
    -- backlog: A is booked in min(period(Order_Date), period(start)); usage lines have no backlog
    SELECT k.line_no, booking_mi, 0, 0, 0, Allocated_Revenue, 0, 0
    FROM order_lines JOIN line_keys k USING (Sales_Order_Item_Id) WHERE Revenue_Rule <> 'usage'
    UNION ALL
    SELECT k.line_no, month_index(Commission_Date), 0, 0, 0, 0, cents(Amount), 0
    FROM raw_commissions JOIN line_keys k USING (Sales_Order_Item_Id) WHERE _is_current
),
summed AS (
    -- grouped on one integer, line_no + mi (line_no is a multiple of 2^32 and 0 ≤ mi < 2^32 for the
    -- four-digit years the import accepts), which DuckDB groups faster than the pair
    SELECT line_month - line_month % 4294967296 AS line_no, line_month % 4294967296 AS mi,
           revenue, billing, fx, booking, commissions, amortization
    FROM (SELECT line_no + mi AS line_month,
                 CAST(sum(revenue) AS BIGINT) AS revenue, CAST(sum(billing) AS BIGINT) AS billing,
                 CAST(sum(fx) AS BIGINT) AS fx, CAST(sum(booking) AS BIGINT) AS booking,
                 CAST(sum(commissions) AS BIGINT) AS commissions, CAST(sum(amortization) AS BIGINT) AS amortization
          FROM flows
          GROUP BY line_no + mi)
),
home_fraction AS (
    -- each line → home rate as an exact fraction num/den, also in lowest terms: equal fractions round
    -- alike, and a small one lets round(x × r) run in BIGINT for |x| ≤ x_limit
    SELECT from_currency, rate_date,
           CASE WHEN num // g BETWEEN 1 AND 4611686018427387903 AND den // g BETWEEN 1 AND 4611686018427387903
                THEN CAST(num // g AS BIGINT) END AS num_s,
           CASE WHEN num // g BETWEEN 1 AND 4611686018427387903 AND den // g BETWEEN 1 AND 4611686018427387903
                THEN CAST(den // g AS BIGINT) END AS den_s
    FROM (SELECT *, gcd(num, den) AS g FROM rate_answers WHERE to_currency = '{home}' AND num > 0 AND den > 0)
),
home_rate AS (
    SELECT k.line_no, l.Sales_Order_Item_Id, l.Currency = '{home}' AS in_home,
           CASE WHEN l.Currency = '{home}' THEN CAST(1 AS HUGEINT) ELSE r.num END AS num,
           CASE WHEN l.Currency = '{home}' THEN CAST(1 AS HUGEINT) ELSE r.den END AS den,
           CASE WHEN l.Currency = '{home}' THEN 1 ELSE f.num_s END AS num_s,
           CASE WHEN l.Currency = '{home}' THEN 1 ELSE f.den_s END AS den_s,
           4611686018427387903 // (CASE WHEN l.Currency = '{home}' THEN 1 ELSE f.num_s END) AS x_limit
    FROM order_lines l
    JOIN line_keys k USING (Sales_Order_Item_Id)
    LEFT JOIN rate_answers r ON r.from_currency = l.Currency AND r.to_currency = '{home}' AND r.rate_date = l.Order_Date
    LEFT JOIN home_fraction f ON f.from_currency = l.Currency AND f.rate_date = l.Order_Date
    WHERE l.Sales_Order_Item_Id NOT IN (SELECT Sales_Order_Item_Id FROM held_lines)
)
-- a home series' ideal value is round(x × r) of the line-currency ideal value of the month
SELECT h.Sales_Order_Item_Id, s.mi, s.revenue, s.billing, s.fx, s.booking, s.commissions, s.amortization,
       CASE WHEN h.in_home THEN s.revenue
            WHEN s.revenue BETWEEN -h.x_limit AND h.x_limit THEN rdiv_i64(s.revenue * h.num_s, h.den_s)
            ELSE CAST(rdiv(s.revenue * h.num, h.den) AS BIGINT) END AS revenue_home,
       CASE WHEN h.in_home THEN s.billing
            WHEN s.billing BETWEEN -h.x_limit AND h.x_limit THEN rdiv_i64(s.billing * h.num_s, h.den_s)
            ELSE CAST(rdiv(s.billing * h.num, h.den) AS BIGINT) END AS billing_home,
       CASE WHEN h.in_home THEN s.fx
            WHEN s.fx BETWEEN -h.x_limit AND h.x_limit THEN rdiv_i64(s.fx * h.num_s, h.den_s)
            ELSE CAST(rdiv(s.fx * h.num, h.den) AS BIGINT) END AS fx_home,
       CASE WHEN h.in_home THEN s.commissions
            WHEN s.commissions BETWEEN -h.x_limit AND h.x_limit THEN rdiv_i64(s.commissions * h.num_s, h.den_s)
            ELSE CAST(rdiv(s.commissions * h.num, h.den) AS BIGINT) END AS commissions_home,
       CASE WHEN h.in_home THEN s.amortization
            WHEN s.amortization BETWEEN -h.x_limit AND h.x_limit THEN rdiv_i64(s.amortization * h.num_s, h.den_s)
            ELSE CAST(rdiv(s.amortization * h.num, h.den) AS BIGINT) END AS amortization_home
FROM summed s JOIN home_rate h USING (line_no);
