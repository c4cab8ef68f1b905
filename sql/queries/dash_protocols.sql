-- Dashboards: metric protocols, the one with the most per-layer summaries first.
SELECT p.protocol_hash, any_value(p.protocol_json) AS protocol_json,
       count(s.metric) AS n
FROM metric_protocols p
LEFT JOIN _raw_metric_summaries s ON s.protocol_hash = p.protocol_hash
GROUP BY p.protocol_hash
ORDER BY n DESC, p.protocol_hash
