-- Dashboards (Runs): per-item errors recorded by ingest runs, newest first.
SELECT run_id, kind, started_at, step, item, error
FROM ingest_errors
ORDER BY started_at DESC, step, item
