-- Periods and subsidiaries whose journal lines do not balance (debits = credits, SPEC §4).
SELECT Actg_Period, coalesce(Subsidiary_Id, '(default)') AS Subsidiary_Id,
       sum(greatest(Net_Debit, 0)) AS debits, sum(greatest(-Net_Debit, 0)) AS credits,
       'debits ' || fmt_money(sum(greatest(Net_Debit, 0))) || ' ≠ credits ' || fmt_money(sum(greatest(-Net_Debit, 0))) AS problem
FROM journal_lines
WHERE Actg_Period BETWEEN {from_period} AND {to_period}
GROUP BY ALL
HAVING sum(Net_Debit) <> 0
ORDER BY 1, 2
