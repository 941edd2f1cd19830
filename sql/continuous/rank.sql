-- The sort key of a change-sized run's line-period files as one integer (lib/exports.py RANK_KEY): the rank
-- of each (order, line) pair its candidates' rows carry, in code-point order, as the files sort them (SPEC §6).
-- The pairs come from both parts of the rows, and each row is ranked by its own pair: a frozen row keeps the
-- values it had when its period was closed (the importer refuses to move a line to another order, but the
-- order would not depend on that).
CREATE OR REPLACE TEMP TABLE ce_rank AS
SELECT Sales_Order_Id, Sales_Order_Item_Id,
       row_number() OVER (ORDER BY Sales_Order_Id NULLS LAST, Sales_Order_Item_Id NULLS LAST) AS _rank
FROM (SELECT Sales_Order_Id, Sales_Order_Item_Id FROM ce_frozen
      UNION
      SELECT Sales_Order_Id, Sales_Order_Item_Id FROM ce_lines);

-- the open rows find their rank by line_no, the key open_line_period_rows keeps
CREATE OR REPLACE TEMP TABLE ce_line_ranks AS
SELECT l.line_no, k._rank
FROM ce_lines l
JOIN ce_rank k ON k.Sales_Order_Item_Id = l.Sales_Order_Item_Id
              AND k.Sales_Order_Id IS NOT DISTINCT FROM l.Sales_Order_Id;

-- The candidates' line-period rows with their rank: what the files of the five line-period types read.
CREATE OR REPLACE TEMP VIEW ce_ranked_line_periods AS
SELECT f.*, k._rank
FROM ce_frozen f
JOIN ce_rank k ON k.Sales_Order_Item_Id = f.Sales_Order_Item_Id
              AND k.Sales_Order_Id IS NOT DISTINCT FROM f.Sales_Order_Id
UNION ALL BY NAME
SELECT o.* EXCLUDE (line_no), r._rank
FROM open_line_period_rows('ce_amounts', 'ce_lines') o
JOIN ce_line_ranks r USING (line_no);
