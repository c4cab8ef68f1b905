-- `ssl-wc models list`: the commit each model's newest attention run resolved (a hub
-- commit, or sha256 of a local folder's config and weights).
SELECT m.model, arg_max(m.commit_hash, r.started_at) AS commit_hash
FROM map_sources m JOIN runs r USING (run_id)
WHERE m.commit_hash IS NOT NULL
GROUP BY m.model
ORDER BY m.model
