-- Macros shared by the revenue engine (SPEC §4). Money is integer cents; intermediate products are
-- HUGEINT so that nothing is ever rounded except where the SPEC says so.

-- round(n / d) half away from zero, for d > 0, exactly.
CREATE OR REPLACE MACRO rdiv(n, d) AS (
    CASE WHEN CAST(n AS HUGEINT) >= 0
         THEN (2 * CAST(n AS HUGEINT) + CAST(d AS HUGEINT)) // (2 * CAST(d AS HUGEINT))
         ELSE -((2 * -CAST(n AS HUGEINT) + CAST(d AS HUGEINT)) // (2 * CAST(d AS HUGEINT)))
    END);

-- Exact rounding without HUGEINT division where nothing can overflow (a HUGEINT division costs about
-- fifty BIGINT ones); the schema's rdiv otherwise, so every result is the one rdiv gives.
-- round(n / d) half away from zero, for BIGINT n > -2^63 and 1 ≤ d ≤ 2^62: q + (2r ≥ d), q, r of |n| / d.
CREATE OR REPLACE MACRO rdiv_i64(n, d) AS (
    CASE WHEN n >= 0 THEN n // d + CASE WHEN 2 * (n % d) >= d THEN 1 ELSE 0 END
         ELSE -((-n) // d + CASE WHEN 2 * ((-n) % d) >= d THEN 1 ELSE 0 END) END);
-- round(a × k / d): a an amount in cents, 0 ≤ k ≤ 31 days of a month
CREATE OR REPLACE MACRO round_share(a, k, d) AS (
    CASE WHEN a BETWEEN -288230376151711743 AND 288230376151711743 AND k BETWEEN 0 AND 31
              AND d BETWEEN 1 AND 4611686018427387903
         THEN rdiv_i64(a * k, d)
         ELSE CAST(rdiv(CAST(a AS HUGEINT) * k, d) AS BIGINT) END);
-- round(a / m)
CREATE OR REPLACE MACRO round_part(a, m) AS (
    CASE WHEN a BETWEEN -4611686018427387903 AND 4611686018427387903 AND m BETWEEN 1 AND 4611686018427387903
         THEN rdiv_i64(a, m)
         ELSE CAST(rdiv(a, m) AS BIGINT) END);

-- round(x × r) into home currency with the line's rate (a line_keys row: see sql/revrec/line_series.sql)
CREATE OR REPLACE MACRO to_home(x, in_home, x_limit, num_s, den_s, num, den) AS (
    CASE WHEN in_home THEN x
         WHEN x BETWEEN -x_limit AND x_limit THEN rdiv_i64(x * num_s, den_s)
         ELSE CAST(rdiv(x * num, den) AS BIGINT) END);

CREATE OR REPLACE MACRO cents(x) AS CAST(x * 100 AS BIGINT);            -- DECIMAL(18,2) → cents, exact
CREATE OR REPLACE MACRO micros(x) AS CAST(x * 1000000 AS HUGEINT);      -- DECIMAL(18,6) → millionths, exact
CREATE OR REPLACE MACRO rate_units(x) AS CAST(x * 1000000000000 AS HUGEINT);  -- DECIMAL(24,12) → 1e-12
CREATE OR REPLACE MACRO rate_scale() AS CAST(1000000000000 AS HUGEINT);

-- Periods: YYYYMM integers; month indexes (year * 12 + month - 1) for arithmetic.
CREATE OR REPLACE MACRO month_index(d) AS (year(d) * 12 + month(d) - 1);
CREATE OR REPLACE MACRO period_of_index(i) AS CAST((i // 12) * 100 + i % 12 + 1 AS INTEGER);
CREATE OR REPLACE MACRO index_of_period(p) AS ((p // 100) * 12 + p % 100 - 1);
CREATE OR REPLACE MACRO month_start(i) AS make_date(CAST(i // 12 AS BIGINT), CAST(i % 12 + 1 AS BIGINT), 1);
CREATE OR REPLACE MACRO is_leap_year(y) AS ((y % 4 = 0 AND y % 100 <> 0) OR y % 400 = 0);
-- the number of days of month index i (arithmetic: cheaper than building dates row by row)
CREATE OR REPLACE MACRO days_in_month(i) AS (
    CASE i % 12 WHEN 1 THEN CASE WHEN is_leap_year(i // 12) THEN 29 ELSE 28 END
                WHEN 3 THEN 30 WHEN 5 THEN 30 WHEN 8 THEN 30 WHEN 10 THEN 30 ELSE 31 END);
-- leap years 1 … y
CREATE OR REPLACE MACRO leap_years_through(y) AS (y // 4 - y // 100 + y // 400);
-- Running counts over the calendar, for month index m = 12y + r (r = 0 for January): how many of the months
-- up to m are Februaries, Februaries of leap years (those of the years up to y − 1, and y's once r ≥ 1), months
-- of 30 days. Each counts from a fixed origin, so the difference between two months counts the months after the
-- first up to the second: one per row, the other per line, with no division by the span.
CREATE OR REPLACE MACRO februaries_through(m) AS (m // 12 + CAST(m % 12 >= 1 AS BIGINT));
CREATE OR REPLACE MACRO leap_februaries_through(m) AS (
    leap_years_through(m // 12 - 1 + CAST(m % 12 >= 1 AS BIGINT)));
CREATE OR REPLACE MACRO thirties_through(m) AS (
    4 * (m // 12) + CAST(m % 12 >= 3 AS BIGINT) + CAST(m % 12 >= 5 AS BIGINT) + CAST(m % 12 >= 8 AS BIGINT)
    + CAST(m % 12 >= 10 AS BIGINT));
-- of the months a … b (month indexes, inclusive; none when a > b): the Februaries, those of 29 days, those of
-- 30 days (the rest have 31), as the difference of the running counts through b and through a − 1
CREATE OR REPLACE MACRO februaries(a, b) AS (
    CASE WHEN a > b THEN 0 ELSE februaries_through(b) - februaries_through(a - 1) END);
CREATE OR REPLACE MACRO leap_februaries(a, b) AS (
    CASE WHEN a > b THEN 0 ELSE leap_februaries_through(b) - leap_februaries_through(a - 1) END);
CREATE OR REPLACE MACRO months_of_30(a, b) AS (
    CASE WHEN a > b THEN 0 ELSE thirties_through(b) - thirties_through(a - 1) END);
-- how many of the months a … b have n days (n = 28, 29, 30 or 31): counted, not listed
CREATE OR REPLACE MACRO months_with_days(a, b, n) AS (
    CASE WHEN a > b THEN 0
         WHEN n = 31 THEN (b - a + 1) - februaries(a, b) - months_of_30(a, b)
         WHEN n = 30 THEN months_of_30(a, b)
         WHEN n = 29 THEN leap_februaries(a, b)
         ELSE februaries(a, b) - leap_februaries(a, b) END);
CREATE OR REPLACE MACRO period_of(d) AS period_of_index(month_index(d));

-- Export formats (SPEC §6): money with exactly 2 decimals; quantities and prices as plain decimals.
CREATE OR REPLACE MACRO fmt_money(c) AS (
    CASE WHEN c IS NULL THEN NULL
         ELSE (CASE WHEN c < 0 THEN '-' ELSE '' END) || CAST(abs(c) // 100 AS VARCHAR) || '.'
              || lpad(CAST(abs(c) % 100 AS VARCHAR), 2, '0')
    END);
CREATE OR REPLACE MACRO fmt_plain(x) AS (
    CASE WHEN x IS NULL THEN NULL
         WHEN contains(CAST(x AS VARCHAR), '.') THEN rtrim(rtrim(CAST(x AS VARCHAR), '0'), '.')
         ELSE CAST(x AS VARCHAR) END);
-- Text that a spreadsheet would run as a formula gets a leading apostrophe (SPEC §6).
CREATE OR REPLACE MACRO fmt_text(s) AS (
    CASE WHEN s IS NULL OR s = '' THEN NULL
         WHEN left(s, 1) IN ('=', '+', '-', '@') THEN '''' || s
         ELSE s END);

-- cents → DECIMAL(18,2) for analysts' views (exact)
CREATE OR REPLACE MACRO money(c) AS CAST(CAST(c AS DECIMAL(18,0)) * 0.01 AS DECIMAL(18,2));
