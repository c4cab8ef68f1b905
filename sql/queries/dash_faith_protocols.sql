-- Dashboards (faithfulness): the protocols the checks ran under, with their row counts
-- (kind 'deletion' or 'mprt'; the one with most rows first).
SELECT p.protocol_hash, p.kind, p.protocol_json,
       coalesce(d.n, 0) + coalesce(s.n, 0) AS n
FROM faithfulness_protocols p
LEFT JOIN (SELECT protocol_hash, count(*) AS n FROM _raw_faithfulness_curves GROUP BY ALL) d
    USING (protocol_hash)
LEFT JOIN (SELECT protocol_hash, count(*) AS n FROM _raw_mprt_similarity GROUP BY ALL) s
    USING (protocol_hash)
ORDER BY p.kind, n DESC, p.protocol_hash
