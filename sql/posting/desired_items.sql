-- What the ledger should hold for {period}, per subsidiary: the net of the period's frozen journal lines per
-- (Account_Id, and the posted dimensions among Class, Location, Department) — SPEC §5.
SELECT Subsidiary_Id AS subsidiary_id, Account_Id AS account_id,
       {class_expr} AS class_id, {location_expr} AS location_id, {department_expr} AS department_id,
       CAST(sum(Net_Debit) AS BIGINT) AS net_debit,
       string_agg(DISTINCT Account_Type, ', ' ORDER BY Account_Type) || ' {label}' AS description
FROM frozen_journal_lines
WHERE Actg_Period = {period}
GROUP BY ALL
HAVING sum(Net_Debit) <> 0
ORDER BY subsidiary_id NULLS FIRST, account_id, class_id NULLS FIRST, location_id NULLS FIRST, department_id NULLS FIRST
