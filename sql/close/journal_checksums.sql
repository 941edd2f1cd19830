-- The checksums of the journals rows of periods ({after_period} … {period}] just frozen, per contract line and
-- period (frozen_journal_checksums, sql/schema/close.sql), from the journals export query over those frozen
-- rows (sql/exports/journals.sql): each checksum is what the continuous export's change test would sum.
INSERT INTO frozen_journal_checksums
SELECT _s0, _item, any_value(_s1), sum(CAST(_h AS HUGEINT))
FROM ({rows}) r
GROUP BY _s0, _item;
