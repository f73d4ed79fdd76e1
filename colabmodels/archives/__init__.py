"""Archives as folders: a zip read by byte ranges, and zip/tar extracted into the cache.

- ``ZipArchive``: a ``.zip`` in any backend (Drive, GCS, S3, a URL, local disk). Its
  central directory is read in at most three ranged requests (``.zipdir``) and kept in the
  cache; members are read by range, neighbours coalesced into large single-range requests, each
  member decoded into its own cache entry with its CRC-32 checked (``.members``).
- ``extract_entry``: a whole zip, tar or tar.gz extracted into one cache entry
  (``cm.fetch(ref, extract=True)``; ``.extract``).
- ``.limits``: which member names may be written and the expansion (bomb) rule.

The datasets, the API and the dataset panel build on these; this package imports only the
cache, the transfer engine, the storage contract and the leaves.
"""

from __future__ import annotations

from .extract import archive_kind, extract_entry, extracted_name, sniff_kind
from .limits import (
    FREE_EXPANSION,
    MACOSX,
    MAX_RATIO,
    MAX_TOTAL,
    check_expansion,
    expansion_budget,
    member_relpath,
)
from .members import MemberFetcher, ZipArchive, check_readable, plan_blocks, read_member_bytes
from .zipdir import ZipDirectory, ZipMember, read_directory

__all__ = [
    "FREE_EXPANSION",
    "MACOSX",
    "MAX_RATIO",
    "MAX_TOTAL",
    "MemberFetcher",
    "ZipArchive",
    "ZipDirectory",
    "ZipMember",
    "archive_kind",
    "check_expansion",
    "check_readable",
    "expansion_budget",
    "extract_entry",
    "extracted_name",
    "member_relpath",
    "plan_blocks",
    "read_directory",
    "read_member_bytes",
    "sniff_kind",
]
