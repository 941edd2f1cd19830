-- Journal lines without an Account_Id: no account_mappings row for the line's subsidiary nor a default.
SELECT coalesce(Subsidiary_Id, '(no subsidiary)') AS Subsidiary_Id, Account_Type, count(*) AS journal_lines,
       min(Actg_Period) AS first_period,
       'no account mapping for ' || Account_Type || ' (subsidiary ' || coalesce(Subsidiary_Id, 'none')
           || ') and no default: add an account_mappings row' AS problem
FROM journal_lines
WHERE Account_Id IS NULL AND Actg_Period BETWEEN {from_period} AND {to_period}
GROUP BY ALL
ORDER BY 1, 2
