"""Shared utilities: content hashing, the crash-safe record store, progress bars."""

from ._hashing import hash_array, hash_file, hash_json, new_hasher
from ._progress import progress
from ._store import (
    CorruptRecordWarning,
    atomic_write_bytes,
    default_cache_dir,
    load_record,
    resolve_cache_dir,
    save_record,
)

__all__ = [
    "CorruptRecordWarning",
    "atomic_write_bytes",
    "default_cache_dir",
    "hash_array",
    "hash_file",
    "hash_json",
    "load_record",
    "new_hasher",
    "progress",
    "resolve_cache_dir",
    "save_record",
]
