-- A rate converts between two different currencies.
SELECT _row_number AS row_number, 'To_Currency' AS column_name, To_Currency AS value,
       'is the same as From_Currency: a rate converts between two different currencies' AS reason
FROM stage WHERE From_Currency = To_Currency
