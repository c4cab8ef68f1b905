"""Which exact weights a spec names: the hub commit a revision resolves to, or a content
fingerprint of a local folder. No torch, no transformers.

A spec pins ``revision`` (commit hash, branch or tag) or floats on ``main``. Before a job
decides what is already done, :func:`resolve_revision` turns the spec into the commit it
would load *now*: from the local Hugging Face cache (``refs/<revision>`` ->
``snapshots/<commit>``), else from the hub unless offline. The job then loads exactly
that commit and records it (``map_sources.commit_hash``), and the commit is part of the
configuration hash, so a moved ``main`` or a newly pinned revision is new work, never
"skipped". A local folder has no commit: its identity is ``sha256:<16 hex>`` over the
names and bytes of its ``config.json`` and weight files (moving the folder keeps it).

Public: :class:`ResolvedRevision`, :func:`resolve_revision`, :func:`folder_fingerprint`,
:func:`is_commit_hash`.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ssl_wc.models.spec import AnySpec

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json")


def is_commit_hash(revision: str | None) -> bool:
    """True for a full 40-hex git commit hash."""
    return bool(revision) and bool(_COMMIT.match(str(revision)))


@dataclass(frozen=True)
class ResolvedRevision:
    """The weights a spec names now: ``commit`` (hub commit or folder fingerprint, or None
    when it cannot be told) and ``how`` it was found (``pinned``, ``cache``, ``hub``,
    ``folder`` or ``unresolved``)."""

    commit: str | None
    how: str


def _offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"}
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def folder_fingerprint(folder: str | os.PathLike[str]) -> str:
    """``sha256:<16 hex>`` over the sorted names and bytes of a folder's top-level
    ``*.json``, ``*.safetensors`` and ``*.bin`` files (what ``from_pretrained`` reads)."""
    h = hashlib.sha256()
    root = Path(folder)
    for p in sorted(root.iterdir()):
        if not p.is_file() or not p.name.endswith(WEIGHT_SUFFIXES):
            continue
        h.update(p.name.encode() + b"\0")
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return "sha256:" + h.hexdigest()[:16]


def _commit_of(path: str) -> str | None:
    """The commit folder of a cached file: ``.../snapshots/<commit>/config.json``."""
    parent = Path(path).parent
    return parent.name if parent.parent.name == "snapshots" and is_commit_hash(parent.name) \
        else None


def resolve_revision(spec: AnySpec, *, local_files_only: bool | None = None) -> ResolvedRevision:
    """The commit ``spec`` would load now (see the module docstring).

    ``local_files_only``: ``None`` follows ``HF_HUB_OFFLINE``; ``True`` never touches the
    network. A pinned full commit hash resolves to itself.
    """
    if spec.local_dir is not None:
        folder = Path(spec.local_dir).expanduser()
        if not (folder / "config.json").is_file():
            return ResolvedRevision(None, "unresolved")
        return ResolvedRevision(folder_fingerprint(folder), "folder")
    if is_commit_hash(spec.revision):
        return ResolvedRevision(spec.revision, "pinned")
    from huggingface_hub import hf_hub_download

    offline = _offline() if local_files_only is None else local_files_only
    for how, local_only in (("cache", True), ("hub", False)):
        if not local_only and offline:
            break
        try:
            path = hf_hub_download(str(spec.hub_id), "config.json", revision=spec.revision,
                                   local_files_only=local_only)
        except Exception:  # not cached / unreachable / no such repo or revision
            continue
        commit = _commit_of(path)
        if commit is not None:
            return ResolvedRevision(commit, how)
    return ResolvedRevision(None, "unresolved")
