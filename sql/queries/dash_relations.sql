-- Dashboards (SQL): the views and tables people can query, with their columns.
SELECT c.table_name AS name, t.kind, list(c.column_name || ' ' || c.data_type
                                          ORDER BY c.ordinal_position) AS columns
FROM information_schema.columns c
JOIN (SELECT view_name AS name, 'view' AS kind FROM duckdb_views()
      WHERE NOT internal AND NOT starts_with(view_name, '_')
      UNION ALL
      SELECT table_name, 'table' FROM duckdb_tables()
      WHERE NOT internal AND NOT starts_with(table_name, '_')) t ON t.name = c.table_name
GROUP BY ALL
ORDER BY t.kind DESC, name
