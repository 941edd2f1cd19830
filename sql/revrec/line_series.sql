-- line_series: the current ("ideal") value per contract line and month (SPEC §4) of the series that come
-- from events — invoices (billing, FX change), usage (a usage line's revenue), commissions and their
-- amortization — in the line's currency and in home currency, before the closed-period rule is applied.
-- Sparse: a month appears only where one of them has a value. The revenue schedule and the booking of a
-- non-usage line follow from the line's own terms by arithmetic; line_periods computes them month by
-- month as it lays out the line's rows (one pass, no intermediate table of every month).
-- line_keys: each contract line that is not held, its integer key line_no and its rate into home currency.

-- An integer per contract line that is not held, in id order: grouping and joining on it is much cheaper
-- than on the text id. line_periods reads the same keys. Integer keys are spread 2^32 apart: DuckDB 2.0.0
-- joins a dense integer key with its perfect hash join, whose dictionary output makes some later operators
-- fail ("INTERNAL Error: dict-surviving cache: global dictionary column … changed identity"); a sparse key
-- is joined by hashing, as fast here and safe.
-- The rate into home currency is kept as an exact fraction num/den and in lowest terms num_s/den_s: equal
-- fractions round alike, and a small one lets round(x × r) run in BIGINT for |x| ≤ x_limit.
CREATE OR REPLACE TABLE line_keys AS
WITH home_fraction AS (
    SELECT from_currency, rate_date,
           CASE WHEN num // g BETWEEN 1 AND 4611686018427387903 AND den // g BETWEEN 1 AND 4611686018427387903
                THEN CAST(num // g AS BIGINT) END AS num_s,
           CASE WHEN num // g BETWEEN 1 AND 4611686018427387903 AND den // g BETWEEN 1 AND 4611686018427387903
                THEN CAST(den // g AS BIGINT) END AS den_s
    FROM (SELECT *, gcd(num, den) AS g FROM rate_answers WHERE to_currency = '{home}' AND num > 0 AND den > 0)
)
SELECT row_number() OVER (ORDER BY l.Sales_Order_Item_Id) * 4294967296 AS line_no, l.Sales_Order_Item_Id,
       l.Currency = '{home}' AS in_home,
       CASE WHEN l.Currency = '{home}' THEN CAST(1 AS HUGEINT) ELSE r.num END AS num,
       CASE WHEN l.Currency = '{home}' THEN CAST(1 AS HUGEINT) ELSE r.den END AS den,
       CASE WHEN l.Currency = '{home}' THEN 1 ELSE f.num_s END AS num_s,
       CASE WHEN l.Currency = '{home}' THEN 1 ELSE f.den_s END AS den_s,
       4611686018427387903 // (CASE WHEN l.Currency = '{home}' THEN 1 ELSE f.num_s END) AS x_limit
FROM order_lines l
LEFT JOIN rate_answers r ON r.from_currency = l.Currency AND r.to_currency = '{home}' AND r.rate_date = l.Order_Date
LEFT JOIN home_fraction f ON f.from_currency = l.Currency AND f.rate_date = l.Order_Date
WHERE l.Sales_Order_Item_Id NOT IN (SELECT Sales_Order_Item_Id FROM held_lines);

-- Each commission amortizes on its line's pattern; what falls before its own month is caught up there.
-- A usage line expenses its commission at once, in the commission's own month.
CREATE OR REPLACE TEMP TABLE commission_inputs AS
SELECT row_number() OVER () * 4294967296 AS input_no, k.line_no, CAST(c.Commission_Date AS VARCHAR) AS owner_key,
       month_index(c.Commission_Date) AS catch_up_mi, cents(c.Amount) AS amount,
       CASE WHEN l.Revenue_Rule = 'usage' THEN 'point_in_time' ELSE l.Revenue_Rule END AS Revenue_Rule,
       l.Service_Start_Date AS s, l.Service_End_Date AS e,
       CASE WHEN l.Revenue_Rule = 'usage' THEN month_index(c.Commission_Date) ELSE l.start_mi END AS start_mi,
       CASE WHEN l.Revenue_Rule = 'usage' THEN month_index(c.Commission_Date) ELSE l.end_mi END AS end_mi
FROM raw_commissions c
JOIN order_lines l USING (Sales_Order_Item_Id)
JOIN line_keys k USING (Sales_Order_Item_Id)
WHERE c._is_current;

-- Ratable amortization: every month's ideal value, then per schedule the sum of its months, from which its
-- last month takes the remainder. The first and last day of each month come from a small calendar.
CREATE OR REPLACE TEMP TABLE schedule_months AS
SELECT mi, month_start(mi) AS first_day, CAST(month_start(mi + 1) AS DATE) - 1 AS last_day
FROM range((SELECT coalesce(min(start_mi), 0) FROM commission_inputs),
           (SELECT coalesce(max(end_mi), -1) FROM commission_inputs) + 1) t(mi);

CREATE OR REPLACE TEMP TABLE amortization_months AS
SELECT x.input_no, x.line_no, x.catch_up_mi, x.mi, x.mi = x.end_mi AS is_last,
       CASE WHEN x.Revenue_Rule = 'ratable_daily'
            -- round(A × days_in(p) / D)
            THEN round_share(x.amount, least(x.e, m.last_day) - greatest(x.s, m.first_day) + 1, x.e - x.s + 1)
            -- round(A / M)
            ELSE round_part(x.amount, x.end_mi - x.start_mi + 1) END AS ideal
FROM (SELECT input_no, line_no, catch_up_mi, amount, Revenue_Rule, s, e, start_mi, end_mi,
             unnest(range(start_mi, end_mi + 1)) AS mi
      FROM commission_inputs WHERE Revenue_Rule IN ('ratable_daily', 'ratable_monthly')) x
JOIN schedule_months m USING (mi);

CREATE OR REPLACE TEMP TABLE amortization_remainders AS
-- the period of the end gets A minus the sum of all earlier periods (of the line's commissions of that date)
SELECT i.input_no, i.amount - (sum(t.total) OVER (PARTITION BY i.line_no, i.owner_key)) AS remainder
FROM commission_inputs i
JOIN (SELECT input_no, sum(ideal) AS total FROM amortization_months GROUP BY input_no) t USING (input_no);

-- Stored by integer key only (line_series_amounts); the line_series view below adds each line's id. The text
-- id on each of ~4M rows cost ~0.5 s of this statement's write at 1M lines, and line_periods joins on line_no.
-- Columns that are zero in nearly every row by construction (an FX change only arises between an invoice's
-- currency and its line's; a commission is one event among many) are stored run-length encoded, sparing DuckDB
-- its bit-packing attempt on them.
CREATE OR REPLACE TABLE line_series_amounts (
    line_no BIGINT, mi BIGINT,
    revenue BIGINT, billing BIGINT, fx BIGINT USING COMPRESSION rle, commissions BIGINT USING COMPRESSION rle,
    amortization BIGINT,
    revenue_home BIGINT, billing_home BIGINT, fx_home BIGINT USING COMPRESSION rle,
    commissions_home BIGINT USING COMPRESSION rle, amortization_home BIGINT
);
INSERT INTO line_series_amounts
WITH flows AS (
    -- amortization, caught up to the commission's month
    SELECT line_no, greatest(mi, catch_up_mi) AS mi, 0 AS revenue, 0 AS billing, 0 AS fx, 0 AS commissions,
           ideal AS amortization
    FROM amortization_months WHERE NOT is_last
    UNION ALL
    SELECT m.line_no, greatest(m.mi, m.catch_up_mi), 0, 0, 0, 0, CAST(r.remainder + m.ideal AS BIGINT)
    FROM amortization_months m JOIN amortization_remainders r USING (input_no)
    WHERE m.is_last
    UNION ALL
    SELECT line_no, greatest(start_mi, catch_up_mi), 0, 0, 0, 0, amount
    FROM commission_inputs WHERE Revenue_Rule = 'point_in_time'
    UNION ALL
    -- usage lines: revenue is the usage dated in the month
    SELECT k.line_no, month_index(u.Usage_Date), cents(u.Amount), 0, 0, 0, 0
    FROM raw_usage u JOIN order_lines l USING (Sales_Order_Item_Id) JOIN line_keys k USING (Sales_Order_Item_Id)
    WHERE u._is_current AND l.Revenue_Rule = 'usage'
    UNION ALL
    SELECT k.line_no, mi, 0, New_Billing, Foreign_Currency_Change, 0, 0
    FROM invoice_events JOIN line_keys k USING (Sales_Order_Item_Id)
    UNION ALL
    SELECT k.line_no, month_index(Commission_Date), 0, 0, 0, cents(Amount), 0
    FROM raw_commissions JOIN line_keys k USING (Sales_Order_Item_Id) WHERE _is_current
),
summed AS (
    -- grouped on one integer, line_no + mi (line_no is a multiple of 2^32 and 0 ≤ mi < 2^32 for the
    -- four-digit years the import accepts), which DuckDB groups faster than the pair
    SELECT line_month - line_month % 4294967296 AS line_no, line_month % 4294967296 AS mi,
           revenue, billing, fx, commissions, amortization
    FROM (SELECT line_no + mi AS line_month,
                 CAST(sum(revenue) AS BIGINT) AS revenue, CAST(sum(billing) AS BIGINT) AS billing,
                 CAST(sum(fx) AS BIGINT) AS fx, CAST(sum(commissions) AS BIGINT) AS commissions,
                 CAST(sum(amortization) AS BIGINT) AS amortization
          FROM flows
          GROUP BY line_no + mi)
)
-- a home series' ideal value is round(x × r) of the line-currency ideal value of the month
SELECT s.line_no, s.mi, s.revenue, s.billing, s.fx, s.commissions, s.amortization,
       to_home(s.revenue, h.in_home, h.x_limit, h.num_s, h.den_s, h.num, h.den) AS revenue_home,
       to_home(s.billing, h.in_home, h.x_limit, h.num_s, h.den_s, h.num, h.den) AS billing_home,
       to_home(s.fx, h.in_home, h.x_limit, h.num_s, h.den_s, h.num, h.den) AS fx_home,
       to_home(s.commissions, h.in_home, h.x_limit, h.num_s, h.den_s, h.num, h.den) AS commissions_home,
       to_home(s.amortization, h.in_home, h.x_limit, h.num_s, h.den_s, h.num, h.den) AS amortization_home
FROM summed s JOIN line_keys h USING (line_no);

CREATE OR REPLACE VIEW line_series AS
SELECT k.Sales_Order_Item_Id, s.*
FROM line_series_amounts s JOIN line_keys k USING (line_no);
