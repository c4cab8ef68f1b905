-- Newest runs first ($limit rows).
SELECT run_id, kind, status, started_at, round(seconds, 2) AS seconds, n_files, n_errors,
       engine, workers, round(worker_images_per_s, 2) AS worker_img_s,
       row_counts_json AS rows, error
FROM runs
ORDER BY started_at DESC
LIMIT $limit
