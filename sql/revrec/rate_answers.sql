-- Exchange rates (SPEC §4 Rates): the rate X→Y on a date is the latest Rate_Date ≤ date of (X, Y); else
-- 1/Rate of (Y, X), exact; else through the home currency (both legs found this way, their exact
-- product); 1 when X = Y. A rate is kept as an exact fraction num/den of integers (1e-12 units).
CREATE OR REPLACE TEMP TABLE fx_quotes AS
SELECT From_Currency AS f, To_Currency AS t, Rate_Date AS d, rate_units(Rate) AS r
FROM raw_exchange_rates WHERE _is_current;

-- Every (from, to, date) the engine needs: line → home at the Order_Date; invoice → line currency at the
-- invoice date and at the Order_Date (for the FX change).
CREATE OR REPLACE TEMP TABLE rate_requests AS
SELECT DISTINCT f, t, d FROM (
    SELECT Currency AS f, '{home}' AS t, Order_Date AS d FROM order_lines
    UNION ALL
    SELECT i.Currency, l.Currency, i.Billing_Date
    FROM raw_invoices i JOIN order_lines l USING (Sales_Order_Item_Id)
    WHERE i._is_current AND i.Currency <> l.Currency
    UNION ALL
    SELECT i.Currency, l.Currency, l.Order_Date
    FROM raw_invoices i JOIN order_lines l USING (Sales_Order_Item_Id)
    WHERE i._is_current AND i.Currency <> l.Currency
) WHERE f <> t;

-- Legs to resolve by the direct-or-inverse rule: the requests themselves and their two home legs.
CREATE OR REPLACE TEMP TABLE rate_legs AS
SELECT DISTINCT f, t, d FROM (
    SELECT f, t, d FROM rate_requests
    UNION ALL SELECT f, '{home}', d FROM rate_requests WHERE f <> '{home}' AND t <> '{home}'
    UNION ALL SELECT '{home}', t, d FROM rate_requests WHERE f <> '{home}' AND t <> '{home}'
);

CREATE OR REPLACE TEMP TABLE rate_legs_resolved AS
WITH direct AS (
    SELECT q.f, q.t, q.d, x.r AS direct_rate
    FROM rate_legs q ASOF LEFT JOIN fx_quotes x ON q.f = x.f AND q.t = x.t AND q.d >= x.d
),
inverse AS (
    SELECT q.f, q.t, q.d, x.r AS inverse_rate
    FROM rate_legs q ASOF LEFT JOIN fx_quotes x ON q.t = x.f AND q.f = x.t AND q.d >= x.d
)
SELECT f, t, d,
       CASE WHEN direct_rate IS NOT NULL THEN direct_rate
            WHEN inverse_rate IS NOT NULL THEN rate_scale() END AS num,
       CASE WHEN direct_rate IS NOT NULL THEN rate_scale()
            WHEN inverse_rate IS NOT NULL THEN inverse_rate END AS den
FROM direct JOIN inverse USING (f, t, d);

CREATE OR REPLACE TABLE rate_answers AS
SELECT q.f AS from_currency, q.t AS to_currency, q.d AS rate_date,
       coalesce(x.num, CASE WHEN a.num IS NOT NULL AND b.num IS NOT NULL THEN a.num * b.num END) AS num,
       coalesce(x.den, CASE WHEN a.num IS NOT NULL AND b.num IS NOT NULL THEN a.den * b.den END) AS den
FROM rate_requests q
LEFT JOIN rate_legs_resolved x ON x.f = q.f AND x.t = q.t AND x.d = q.d
LEFT JOIN rate_legs_resolved a ON a.f = q.f AND a.t = '{home}' AND a.d = q.d AND q.f <> '{home}' AND q.t <> '{home}'
LEFT JOIN rate_legs_resolved b ON b.f = '{home}' AND b.t = q.t AND b.d = q.d AND q.f <> '{home}' AND q.t <> '{home}';
