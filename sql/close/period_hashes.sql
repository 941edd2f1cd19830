-- A checksum per closed period of everything it reports (frozen rows, journals, invoices, orders).
-- Stored at the close; the asset check `closed_periods_unchanged` recomputes and compares it.
SELECT p.period,
       coalesce(lp.h, 0) + coalesce(j.h, 0) + coalesce(i.h, 0) + coalesce(o.h, 0) AS rows_hash
FROM (SELECT unnest(range(index_of_period({first_period}), index_of_period({last_period}) + 1)) AS mi) g
CROSS JOIN LATERAL (SELECT period_of_index(g.mi) AS period) p
LEFT JOIN (SELECT Actg_Period, sum(CAST(hash(t) AS HUGEINT)) AS h FROM frozen_line_periods t WHERE Actg_Period BETWEEN {first_period} AND {last_period} GROUP BY ALL) lp ON lp.Actg_Period = p.period
LEFT JOIN (SELECT Actg_Period, sum(CAST(hash(t) AS HUGEINT)) AS h FROM frozen_journal_lines t WHERE Actg_Period BETWEEN {first_period} AND {last_period} GROUP BY ALL) j ON j.Actg_Period = p.period
LEFT JOIN (SELECT Actg_Period, sum(CAST(hash(t) AS HUGEINT)) AS h FROM frozen_invoice_register t WHERE Actg_Period BETWEEN {first_period} AND {last_period} GROUP BY ALL) i ON i.Actg_Period = p.period
LEFT JOIN (SELECT Actg_Period, sum(CAST(hash(t) AS HUGEINT)) AS h FROM frozen_orders t WHERE Actg_Period BETWEEN {first_period} AND {last_period} GROUP BY ALL) o ON o.Actg_Period = p.period
ORDER BY p.period
