-- Rows whose rollforward does not add up (SPEC §4): beginning + billing + FX − revenue + adjustment = ending
-- position, beginning = previous ending, backlog and deferred expense roll forward.
-- Only the periods checked are read, plus each line's last row before them (its ending balances are
-- what the first checked row must begin with): a close checks its own periods, not the whole history.
-- For nearly every line that row is in the period just before them ({previous_period}); only the checked
-- lines with no row there are looked up further back, so that a close does not group every line's rows of
-- every closed period (4.8 s at a year of closes at a million lines, growing by a period at each close).
-- Only each row's balances go through the window (the continuity test): the other tests need no neighbour and
-- read each row once. A window carrying every column of every row spilled gigabytes and took 17–19 s over all
-- of a million lines' periods (the asset check); this way 5 s (BENCHMARKS.md, session 10). A row is reported
-- once, with the first of these that fails: its unearned rollforward, its beginning balances, its backlog, its
-- deferred expense, its signs.
WITH checked AS NOT MATERIALIZED (
    SELECT Sales_Order_Id, Sales_Order_Item_Id, Actg_Period, Currency,
           Beginning_Unearned_Revenue, Beginning_Unbilled_Receivable, New_Billing, Foreign_Currency_Change, Revenue,
           Adjustment_To_Unearned_Revenue, Ending_Unearned_Revenue, Ending_Unbilled_Receivable,
           Beginning_Backlog, New_Booking, Ending_Backlog,
           Beginning_Deferred_Expense, New_Commissions, Commission_Amortization, Ending_Deferred_Expense
    FROM line_periods WHERE Actg_Period BETWEEN {from_period} AND {to_period}
),
just_before AS (
    SELECT Sales_Order_Item_Id, Actg_Period, Ending_Unearned_Revenue, Ending_Unbilled_Receivable, false AS in_range
    FROM line_periods
    WHERE Actg_Period = {previous_period} AND {previous_period} < {from_period}
),
further_back AS (
    SELECT Sales_Order_Item_Id, max(Actg_Period) AS Actg_Period,
           arg_max(Ending_Unearned_Revenue, Actg_Period) AS Ending_Unearned_Revenue,
           arg_max(Ending_Unbilled_Receivable, Actg_Period) AS Ending_Unbilled_Receivable, false AS in_range
    FROM line_periods
    WHERE Actg_Period < {from_period} AND Actg_Period <> {previous_period}
      -- the lines to look up (usually none, and then the history is not read)
      AND Sales_Order_Item_Id IN (
          SELECT c.Sales_Order_Item_Id FROM checked c
          WHERE NOT EXISTS (SELECT 1 FROM just_before j WHERE j.Sales_Order_Item_Id = c.Sales_Order_Item_Id))
    GROUP BY Sales_Order_Item_Id
),
prior AS (
    SELECT * FROM just_before
    UNION ALL BY NAME
    SELECT * FROM further_back
),
-- the rows whose own figures do not add up
own AS (
    SELECT Sales_Order_Id, Sales_Order_Item_Id, Actg_Period, unearned_off,
           CASE WHEN unearned_off
                THEN 'unearned rollforward off by ' || fmt_money(Ending_Unearned_Revenue - Ending_Unbilled_Receivable
                     - (Beginning_Unearned_Revenue - Beginning_Unbilled_Receivable + New_Billing + Foreign_Currency_Change
                        - Revenue + Adjustment_To_Unearned_Revenue)) || ' ' || Currency
                WHEN Ending_Backlog IS NOT NULL AND Beginning_Backlog + New_Booking - Revenue <> Ending_Backlog
                THEN 'backlog rollforward off by ' || fmt_money(Ending_Backlog - (Beginning_Backlog + New_Booking - Revenue))
                WHEN Beginning_Deferred_Expense + New_Commissions - Commission_Amortization <> Ending_Deferred_Expense
                THEN 'deferred expense rollforward off by ' || fmt_money(Ending_Deferred_Expense - (Beginning_Deferred_Expense + New_Commissions - Commission_Amortization))
                WHEN Ending_Unearned_Revenue < 0 OR Ending_Unbilled_Receivable < 0 OR (Ending_Unearned_Revenue > 0 AND Ending_Unbilled_Receivable > 0)
                THEN 'a line carries both unearned revenue and an unbilled receivable, or a negative balance'
           END AS problem
    FROM (SELECT *, Beginning_Unearned_Revenue - Beginning_Unbilled_Receivable + New_Billing + Foreign_Currency_Change
                    - Revenue + Adjustment_To_Unearned_Revenue <> Ending_Unearned_Revenue - Ending_Unbilled_Receivable
                    AS unearned_off
          FROM checked)
    WHERE problem IS NOT NULL
),
-- the rows that do not begin with the balances their line's previous row ended with
continuity AS (
    SELECT Sales_Order_Id, Sales_Order_Item_Id, Actg_Period, prev_period
    FROM (
        SELECT Sales_Order_Id, Sales_Order_Item_Id, Actg_Period, in_range,
               Beginning_Unearned_Revenue, Beginning_Unbilled_Receivable,
               lag(Ending_Unearned_Revenue) OVER w AS prev_unearned, lag(Ending_Unbilled_Receivable) OVER w AS prev_unbilled,
               lag(Actg_Period) OVER w AS prev_period
        FROM (SELECT Sales_Order_Id, Sales_Order_Item_Id, Actg_Period, Beginning_Unearned_Revenue,
                     Beginning_Unbilled_Receivable, Ending_Unearned_Revenue, Ending_Unbilled_Receivable, true AS in_range
              FROM checked
              UNION ALL BY NAME SELECT * FROM prior)
        WINDOW w AS (PARTITION BY Sales_Order_Item_Id ORDER BY Actg_Period)
    )
    WHERE in_range AND prev_period IS NOT NULL
      AND (Beginning_Unearned_Revenue <> prev_unearned OR Beginning_Unbilled_Receivable <> prev_unbilled)
)
SELECT coalesce(o.Sales_Order_Id, k.Sales_Order_Id) AS Sales_Order_Id, Sales_Order_Item_Id, Actg_Period,
       CASE WHEN o.unearned_off THEN o.problem
            WHEN k.prev_period IS NOT NULL THEN 'beginning balances differ from the ending balances of ' || k.prev_period
            ELSE o.problem
       END AS problem
FROM own o FULL JOIN continuity k USING (Sales_Order_Item_Id, Actg_Period)
ORDER BY Actg_Period, Sales_Order_Id, Sales_Order_Item_Id
