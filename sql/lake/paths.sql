-- Where the lake is. Views name committed files relative to the warehouse folder and
-- resolve them through these macros, so a moved or copied warehouse opens unchanged:
--   * every ssl-wc connection sets the session variable ssl_wc_root to the folder;
--   * a plain duckdb session started in the warehouse folder needs nothing (the
--     current directory is the default);
--   * from elsewhere: SET VARIABLE ssl_wc_root = '/path/to/warehouse';
-- Applied before the views that read the lake.
CREATE OR REPLACE MACRO ssl_wc_root() AS coalesce(getvariable('ssl_wc_root'), '.');

CREATE OR REPLACE MACRO ssl_wc_files(files) AS
    list_transform(files, lambda p: ssl_wc_root() || '/' || p);
