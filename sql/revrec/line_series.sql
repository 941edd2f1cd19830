-- line_series: the current ("ideal") value of every series per contract line and month (SPEC §4), in the
-- line's currency and in home currency, before the closed-period rule is applied. Sparse: a month
-- appears only where some series has a value.
CREATE OR REPLACE TEMP TABLE schedule_inputs AS
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
WHERE c._is_current AND c.Sales_Order_Item_Id NOT IN (SELECT Sales_Order_Item_Id FROM held_lines);

CREATE OR REPLACE TEMP TABLE schedule AS
WITH ratable_months AS (
    SELECT *, unnest(range(start_mi, end_mi + 1)) AS mi
    FROM schedule_inputs WHERE Revenue_Rule IN ('ratable_daily', 'ratable_monthly')
),
ratable_values AS (
    SELECT series, Sales_Order_Item_Id, owner_key, catch_up_mi, amount, mi, end_mi,
           CASE WHEN Revenue_Rule = 'ratable_daily'
                -- round(A × days_in(p) / D)
                THEN rdiv(CAST(amount AS HUGEINT)
                          * (least(e, CAST(month_start(mi + 1) AS DATE) - 1) - greatest(s, month_start(mi)) + 1),
                          e - s + 1)
                -- round(A / M)
                ELSE rdiv(amount, end_mi - start_mi + 1) END AS ideal
    FROM ratable_months
),
ratable AS (
    -- the period of the end gets A minus the sum of all earlier periods
    SELECT series, Sales_Order_Item_Id, owner_key, catch_up_mi, mi,
           CASE WHEN mi = end_mi
                THEN amount - (sum(ideal) OVER (PARTITION BY series, Sales_Order_Item_Id, owner_key) - ideal)
                ELSE ideal END AS value
    FROM ratable_values
),
point_in_time AS (
    SELECT series, Sales_Order_Item_Id, owner_key, catch_up_mi, start_mi AS mi, CAST(amount AS HUGEINT) AS value
    FROM schedule_inputs WHERE Revenue_Rule = 'point_in_time'
)
SELECT series, Sales_Order_Item_Id, greatest(mi, coalesce(catch_up_mi, mi)) AS mi, CAST(sum(value) AS BIGINT) AS value
FROM (SELECT * FROM ratable UNION ALL BY NAME SELECT * FROM point_in_time)
GROUP BY series, Sales_Order_Item_Id, greatest(mi, coalesce(catch_up_mi, mi));

CREATE OR REPLACE TABLE line_series AS
WITH flows AS (
    SELECT Sales_Order_Item_Id, mi, value AS revenue, 0 AS billing, 0 AS fx, 0 AS booking, 0 AS commissions, 0 AS amortization
    FROM schedule WHERE series = 'revenue'
    UNION ALL
    SELECT Sales_Order_Item_Id, mi, 0, 0, 0, 0, 0, value FROM schedule WHERE series = 'amortization'
    UNION ALL
    -- usage lines: revenue is the usage dated in the month
    SELECT u.Sales_Order_Item_Id, month_index(u.Usage_Date), cents(u.Amount), 0, 0, 0, 0, 0
    FROM raw_usage u JOIN order_lines l USING (Sales_Order_Item_Id)
    WHERE u._is_current AND l.Revenue_Rule = 'usage'
    UNION ALL
    SELECT Sales_Order_Item_Id, mi, 0, New_Billing, Foreign_Currency_Change, 0, 0, 0 FROM invoice_events
    UNION ALL
    -- backlog: A is booked in min(period(Order_Date), period(start)); usage lines have no backlog
    SELECT Sales_Order_Item_Id, booking_mi, 0, 0, 0, Allocated_Revenue, 0, 0
    FROM order_lines WHERE Revenue_Rule <> 'usage'
    UNION ALL
    SELECT Sales_Order_Item_Id, month_index(Commission_Date), 0, 0, 0, 0, cents(Amount), 0
    FROM raw_commissions WHERE _is_current
),
summed AS (
    SELECT f.Sales_Order_Item_Id, f.mi,
           CAST(sum(revenue) AS BIGINT) AS revenue, CAST(sum(billing) AS BIGINT) AS billing,
           CAST(sum(fx) AS BIGINT) AS fx, CAST(sum(booking) AS BIGINT) AS booking,
           CAST(sum(commissions) AS BIGINT) AS commissions, CAST(sum(amortization) AS BIGINT) AS amortization
    FROM flows f
    WHERE f.Sales_Order_Item_Id NOT IN (SELECT Sales_Order_Item_Id FROM held_lines)
    GROUP BY ALL
),
home_rate AS (
    SELECT l.Sales_Order_Item_Id,
           CASE WHEN l.Currency = '{home}' THEN CAST(1 AS HUGEINT) ELSE r.num END AS num,
           CASE WHEN l.Currency = '{home}' THEN CAST(1 AS HUGEINT) ELSE r.den END AS den
    FROM order_lines l
    LEFT JOIN rate_answers r ON r.from_currency = l.Currency AND r.to_currency = '{home}' AND r.rate_date = l.Order_Date
)
-- a home series' ideal value is round(x × r) of the line-currency ideal value of the month
SELECT s.*,
       CAST(rdiv(s.revenue * h.num, h.den) AS BIGINT) AS revenue_home,
       CAST(rdiv(s.billing * h.num, h.den) AS BIGINT) AS billing_home,
       CAST(rdiv(s.fx * h.num, h.den) AS BIGINT) AS fx_home,
       CAST(rdiv(s.commissions * h.num, h.den) AS BIGINT) AS commissions_home,
       CAST(rdiv(s.amortization * h.num, h.den) AS BIGINT) AS amortization_home
FROM summed s JOIN home_rate h USING (Sales_Order_Item_Id);
