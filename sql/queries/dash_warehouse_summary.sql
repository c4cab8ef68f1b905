-- Dashboards (Runs): counts of what the warehouse holds.
SELECT item, n FROM warehouse_summary
