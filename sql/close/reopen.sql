-- Reopen {period} and every later closed period (SPEC §5): their frozen rows are dropped, so the next
-- computation reports them from current data again, with the catch-up landing in {period}.
DELETE FROM frozen_line_periods WHERE Actg_Period >= {period};
-- the reopened periods leave line_periods until the next computation: the UI metadata's totals go too
DROP TABLE IF EXISTS line_period_totals;
DELETE FROM frozen_journal_lines WHERE Actg_Period >= {period};
DELETE FROM frozen_journal_checksums WHERE Actg_Period >= {period};
DELETE FROM frozen_invoice_register WHERE Actg_Period >= {period};
DELETE FROM frozen_orders WHERE Actg_Period >= {period};
DELETE FROM closed_periods WHERE period >= {period};
