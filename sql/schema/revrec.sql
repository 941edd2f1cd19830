-- Macros shared by the revenue engine (SPEC §4). Money is integer cents; intermediate products are
-- HUGEINT so that nothing is ever rounded except where the SPEC says so.

-- round(n / d) half away from zero, for d > 0, exactly.
CREATE OR REPLACE MACRO rdiv(n, d) AS (
    CASE WHEN CAST(n AS HUGEINT) >= 0
         THEN (2 * CAST(n AS HUGEINT) + CAST(d AS HUGEINT)) // (2 * CAST(d AS HUGEINT))
         ELSE -((2 * -CAST(n AS HUGEINT) + CAST(d AS HUGEINT)) // (2 * CAST(d AS HUGEINT)))
    END);

CREATE OR REPLACE MACRO cents(x) AS CAST(x * 100 AS BIGINT);            -- DECIMAL(18,2) → cents, exact
CREATE OR REPLACE MACRO micros(x) AS CAST(x * 1000000 AS HUGEINT);      -- DECIMAL(18,6) → millionths, exact
CREATE OR REPLACE MACRO rate_units(x) AS CAST(x * 1000000000000 AS HUGEINT);  -- DECIMAL(24,12) → 1e-12
CREATE OR REPLACE MACRO rate_scale() AS CAST(1000000000000 AS HUGEINT);

-- Periods: YYYYMM integers; month indexes (year * 12 + month - 1) for arithmetic.
CREATE OR REPLACE MACRO month_index(d) AS (year(d) * 12 + month(d) - 1);
CREATE OR REPLACE MACRO period_of_index(i) AS CAST((i // 12) * 100 + i % 12 + 1 AS INTEGER);
CREATE OR REPLACE MACRO index_of_period(p) AS ((p // 100) * 12 + p % 100 - 1);
CREATE OR REPLACE MACRO month_start(i) AS make_date(CAST(i // 12 AS BIGINT), CAST(i % 12 + 1 AS BIGINT), 1);
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
