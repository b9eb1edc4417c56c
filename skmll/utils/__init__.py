"""Shared utilities: content hashing, the crash-safe record store, progress bars, text rules."""

from ._hashing import hash_array, hash_file, hash_json, new_hasher
from ._progress import progress
from ._records import (
    CacheWriteWarning,
    CorruptRecordWarning,
    ForeignRecordError,
    RecordError,
    atomic_write_bytes,
    default_cache_dir,
    load_record,
    read_record,
    remove_stale_files,
    resolve_cache_dir,
    save_record,
)
from ._text import check_template, fill_template, quoted_names

__all__ = [
    "CacheWriteWarning",
    "CorruptRecordWarning",
    "ForeignRecordError",
    "RecordError",
    "atomic_write_bytes",
    "check_template",
    "default_cache_dir",
    "fill_template",
    "hash_array",
    "hash_file",
    "hash_json",
    "load_record",
    "new_hasher",
    "progress",
    "quoted_names",
    "read_record",
    "remove_stale_files",
    "resolve_cache_dir",
    "save_record",
]
