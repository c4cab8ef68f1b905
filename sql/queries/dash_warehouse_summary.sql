-- Dashboards (Runs) and `ssl-wc info`: counts of what the warehouse holds.
SELECT item, n FROM warehouse_summary
