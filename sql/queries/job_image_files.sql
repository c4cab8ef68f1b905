-- Jobs: where each image's file is (path relative to image_root; has_file false when the
-- image was annotated but no file was ingested).
SELECT image_id, path, image_root, has_file FROM images ORDER BY image_id
