-- Dashboards: metric protocols that have per-layer summaries (most summaries first).
SELECT p.protocol_hash, any_value(p.protocol_json) AS protocol_json,
       (SELECT count(*) FROM layer_progression s WHERE s.protocol_hash = p.protocol_hash) AS n
FROM metric_protocols p
GROUP BY p.protocol_hash
ORDER BY n DESC, p.protocol_hash
