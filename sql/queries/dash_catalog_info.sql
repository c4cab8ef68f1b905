-- Dashboards and `ssl-wc info`: catalog metadata (root, commit state, build time).
SELECT key, value FROM catalog_info
