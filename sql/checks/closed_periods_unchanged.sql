-- Closed periods whose frozen rows no longer match the checksum stored at their close (SPEC §4).
WITH now AS ({current_hashes})
SELECT c.period AS Actg_Period, c.close_number, c.closed_at,
       'the rows of closed period ' || c.period || ' changed after its close #' || c.close_number AS problem
FROM closed_periods c JOIN now n ON n.period = c.period
WHERE n.rows_hash <> c.rows_hash
ORDER BY 1
