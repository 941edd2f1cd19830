-- journal_lines: per line, period and account type, the net debit in home currency (SPEC §4 Journals).
-- Positive is a debit, negative a credit; zero lines are omitted. Closed periods report their frozen lines.
--
-- Journal lines are arithmetic on the open line_periods rows, so they are a view: storing ~2 rows per
-- line-period costs more than deriving them when read. What the view reads is written by the engine
-- (this step and line_periods), so journal_lines changes only when the engine runs or a period closes.

-- Each line's Account_Id per account type from account_mappings: its subsidiary's, else the default
-- (empty Subsidiary_Id); resolved once per subsidiary.
CREATE OR REPLACE TABLE journal_line_accounts AS
WITH account_types AS (
    SELECT * FROM (VALUES ('Contra Revenue'), ('Revenue'), ('Deferred Revenue'), ('Unbilled Receivable'),
                          ('Deferred Expense'), ('Expense Clearing'), ('Expense Recognized')) t(Account_Type)
),
subsidiaries AS (
    SELECT DISTINCT Subsidiary_Id FROM line_period_lines
),
resolved AS (
    SELECT s.Subsidiary_Id, t.Account_Type, coalesce(own.Account_Id, dflt.Account_Id) AS Account_Id
    FROM subsidiaries s
    CROSS JOIN account_types t
    LEFT JOIN raw_account_mappings own
           ON own._is_current AND own.Account_Type = t.Account_Type AND own.Subsidiary_Id = s.Subsidiary_Id
    LEFT JOIN raw_account_mappings dflt
           ON dflt._is_current AND dflt.Account_Type = t.Account_Type AND dflt.Subsidiary_Id IS NULL
),
by_subsidiary AS (
    SELECT Subsidiary_Id,
           any_value(Account_Id) FILTER (WHERE Account_Type = 'Contra Revenue') AS contra_revenue_account,
           any_value(Account_Id) FILTER (WHERE Account_Type = 'Revenue') AS revenue_account,
           any_value(Account_Id) FILTER (WHERE Account_Type = 'Deferred Revenue') AS deferred_revenue_account,
           any_value(Account_Id) FILTER (WHERE Account_Type = 'Unbilled Receivable') AS unbilled_receivable_account,
           any_value(Account_Id) FILTER (WHERE Account_Type = 'Deferred Expense') AS deferred_expense_account,
           any_value(Account_Id) FILTER (WHERE Account_Type = 'Expense Clearing') AS expense_clearing_account,
           any_value(Account_Id) FILTER (WHERE Account_Type = 'Expense Recognized') AS expense_recognized_account
    FROM resolved
    GROUP BY Subsidiary_Id
)
SELECT l.line_no, a.* EXCLUDE (Subsidiary_Id)
FROM line_period_lines l
JOIN by_subsidiary a ON a.Subsidiary_Id IS NOT DISTINCT FROM l.Subsidiary_Id;

-- The seven nets of each open row (home currency, debit positive), one column per account type, from its
-- amounts alone: the balances as open_line_period_rows (sql/revrec/line_periods.sql) derives them, the
-- position before the period being the position after it less its flows and adjustment. journal_lines names
-- them by account; the row count and the totals per period (lib/engine.py, the asset's metadata) sum them
-- without assembling a row.
CREATE OR REPLACE VIEW journal_line_nets AS
SELECT line_no, Actg_Period,
       CAST(CAST(billing_home AS HUGEINT) + fx_home + adjustment_home AS BIGINT) AS contra_revenue_net,
       CAST(-CAST(revenue_home AS HUGEINT) AS BIGINT) AS revenue_net,
       CAST(-(greatest(position, 0) - greatest(prev_position, 0)) AS BIGINT) AS deferred_revenue_net,
       CAST(greatest(-position, 0) - greatest(-prev_position, 0) AS BIGINT) AS unbilled_receivable_net,
       CAST(CAST(commissions_home AS HUGEINT) - amortization_home AS BIGINT) AS deferred_expense_net,
       CAST(-CAST(commissions_home AS HUGEINT) AS BIGINT) AS expense_clearing_net,
       CAST(amortization_home AS BIGINT) AS expense_recognized_net
FROM (SELECT line_no, Actg_Period, billing_home, fx_home, adjustment_home, revenue_home, commissions_home,
             amortization_home, CAST(position_home AS HUGEINT) AS position,
             CAST(position_home AS HUGEINT) - (CAST(billing_home AS HUGEINT) + fx_home - revenue_home)
                 - adjustment_home AS prev_position
      FROM line_period_amounts);

-- The seven nets of a row are unnested as plain numbers and named after the zero ones are dropped (about
-- two of seven remain): cheaper than unnesting seven named structs per row.
CREATE OR REPLACE VIEW journal_lines AS
WITH nets AS (
    SELECT n.Actg_Period, l.Sales_Order_Id, l.Sales_Order_Item_Id, l.Product_Id, l.Customer_Id, l.Class, l.Location,
           l.Department, l.Subsidiary_Id, l.Home_Currency, a.* EXCLUDE (line_no),
           unnest(range(1, 8)) AS k,
           unnest([n.contra_revenue_net, n.revenue_net, n.deferred_revenue_net, n.unbilled_receivable_net,
                   n.deferred_expense_net, n.expense_clearing_net, n.expense_recognized_net]) AS n
    FROM journal_line_nets n
    JOIN line_period_lines l USING (line_no)
    JOIN journal_line_accounts a USING (line_no)
),
open_lines AS (
    SELECT Actg_Period, Sales_Order_Id, Sales_Order_Item_Id,
           CASE k WHEN 1 THEN contra_revenue_account WHEN 2 THEN revenue_account WHEN 3 THEN deferred_revenue_account
                  WHEN 4 THEN unbilled_receivable_account WHEN 5 THEN deferred_expense_account WHEN 6 THEN expense_clearing_account
                  ELSE expense_recognized_account END AS Account_Id,
           Product_Id, Customer_Id, Class, Location, Department, Subsidiary_Id,
           CASE k WHEN 1 THEN 'Contra Revenue' WHEN 2 THEN 'Revenue' WHEN 3 THEN 'Deferred Revenue'
                  WHEN 4 THEN 'Unbilled Receivable' WHEN 5 THEN 'Deferred Expense' WHEN 6 THEN 'Expense Clearing'
                  ELSE 'Expense Recognized' END AS Account_Type,
           n AS Net_Debit, Home_Currency AS Currency
    FROM nets
    WHERE n <> 0
)
SELECT * FROM frozen_journal_lines
UNION ALL BY NAME
SELECT Actg_Period, Sales_Order_Id, Sales_Order_Item_Id, Account_Id, Product_Id, Customer_Id,
       CAST(Actg_Period AS VARCHAR) || '_' || Account_Type AS Link_Id, Class, Location, Department, Subsidiary_Id,
       Account_Type, Net_Debit, Currency
FROM open_lines;
