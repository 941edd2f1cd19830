-- What has already reached {target} for {period}: the items of its successful entries, netted per item key.
SELECT e.subsidiary_id, i.account_id, i.class_id, i.location_id, i.department_id, CAST(sum(i.net_debit) AS BIGINT) AS net_debit
FROM posting_entries e JOIN posting_items i USING (entry_key)
WHERE e.target = '{target}' AND e.period = {period} AND e.status = 'Success'
GROUP BY ALL
