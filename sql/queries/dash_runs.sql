-- Dashboards (Runs): ingest history, newest first, with files, rows and bytes written.
SELECT r.run_id, r.kind, r.status, r.started_at, r.ended_at, r.seconds, r.n_errors,
       r.error, r.row_counts_json, r.config_json, r.summary_json, r.code_version, r.host,
       r.device, r.engine, r.workers, r.images_per_s, r.worker_images_per_s,
       coalesce(f.n_files, 0) AS n_files, coalesce(f.rows, 0) AS rows,
       coalesce(f.bytes, 0) AS bytes
FROM runs r
LEFT JOIN (SELECT run_id, count(*) AS n_files, sum(rows)::BIGINT AS rows,
                  sum(bytes)::BIGINT AS bytes
           FROM run_files GROUP BY run_id) f USING (run_id)
ORDER BY r.started_at DESC
