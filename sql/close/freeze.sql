-- Freeze periods ({first_period} … {period}] at a close (SPEC §5): everything they report is copied into
-- the frozen tables, which later computations read for those periods instead of recomputing them.
INSERT INTO frozen_line_periods BY NAME
SELECT * FROM line_periods WHERE Actg_Period > {after_period} AND Actg_Period <= {period};

INSERT INTO frozen_journal_lines BY NAME
SELECT * FROM journal_lines WHERE Actg_Period > {after_period} AND Actg_Period <= {period};

INSERT INTO frozen_invoice_register BY NAME
SELECT * FROM invoice_register WHERE Actg_Period > {after_period} AND Actg_Period <= {period};

-- orders rows of the exported period: every line with Order_Date ≤ the end of the period
INSERT INTO frozen_orders BY NAME
SELECT {period} AS Actg_Period, * EXCLUDE (Revenue_Rule) FROM orders
WHERE Order_Date <= last_day(make_date({period} // 100, {period} % 100, 1));

-- the frozen periods' rows now come from frozen_line_periods (and journal_lines from frozen_journal_lines)
DELETE FROM line_period_amounts WHERE Actg_Period <= {period};
