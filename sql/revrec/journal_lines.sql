-- journal_lines: per line, period and account type, the net debit in home currency (SPEC §4 Journals).
-- Positive is a debit, negative a credit; zero lines are omitted. Closed periods report their frozen lines.
CREATE OR REPLACE TABLE journal_lines AS
WITH close_state AS (
    SELECT max(period) AS last_closed FROM closed_periods
),
open_periods AS (
    SELECT lp.* FROM line_periods lp CROSS JOIN close_state c
    WHERE c.last_closed IS NULL OR lp.Actg_Period > c.last_closed
),
nets AS (
    SELECT Actg_Period, Sales_Order_Id, Sales_Order_Item_Id, Product_Id, Customer_Id, Class, Location, Department,
           Subsidiary_Id, Home_Currency,
           unnest([
               {{'t': 'Contra Revenue',      'n': New_Billing_Home + Foreign_Currency_Change_Home + Adjustment_Home}},
               {{'t': 'Revenue',             'n': -Revenue_Home}},
               {{'t': 'Deferred Revenue',    'n': -(Ending_Unearned_Home - Beginning_Unearned_Home)}},
               {{'t': 'Unbilled Receivable', 'n': Ending_Unbilled_Home - Beginning_Unbilled_Home}},
               {{'t': 'Deferred Expense',    'n': New_Commissions_Home - Commission_Amortization_Home}},
               {{'t': 'Expense Clearing',    'n': -New_Commissions_Home}},
               {{'t': 'Expense Recognized',  'n': Commission_Amortization_Home}}
           ]) AS j
    FROM open_periods
),
open_lines AS (
    SELECT n.Actg_Period, n.Sales_Order_Id, n.Sales_Order_Item_Id,
           -- Account_Id from account_mappings: the line's subsidiary, else the default (empty Subsidiary_Id)
           coalesce(own.Account_Id, dflt.Account_Id) AS Account_Id,
           n.Product_Id, n.Customer_Id, CAST(n.Actg_Period AS VARCHAR) || '_' || n.j.t AS Link_Id,
           n.Class, n.Location, n.Department, n.Subsidiary_Id,
           n.j.t AS Account_Type, CAST(n.j.n AS BIGINT) AS Net_Debit, n.Home_Currency AS Currency
    FROM nets n
    LEFT JOIN raw_account_mappings own
           ON own._is_current AND own.Account_Type = n.j.t AND own.Subsidiary_Id = n.Subsidiary_Id
    LEFT JOIN raw_account_mappings dflt
           ON dflt._is_current AND dflt.Account_Type = n.j.t AND dflt.Subsidiary_Id IS NULL
    WHERE n.j.n <> 0
)
SELECT * FROM frozen_journal_lines
UNION ALL BY NAME
SELECT * FROM open_lines;
