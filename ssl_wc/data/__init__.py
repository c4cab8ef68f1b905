"""Input data: parsers for the WikiChurches files, image-folder scans, and a synthetic demo.

- ``ssl_wc.data.wikichurches``: ``building_parts.json``, ``style_names.txt``,
  ``churches.json`` -> pyarrow tables, with strict validation.
- ``ssl_wc.data.imagefiles``: scan an image folder (size, mode, sha256, full decode).
- ``ssl_wc.data.demo``: deterministic synthetic dataset in the real formats.
- ``ssl_wc.data.errors``: ``InputError`` / ``InputErrors`` naming file, location, reason.
"""
