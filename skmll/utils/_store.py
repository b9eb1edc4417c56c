"""Crash-safe storage of arrays + JSON: atomic writes, checksums, never pickle.

A record is two files, ``<key>.npz`` (plain numeric arrays) and ``<key>.json`` (metadata, the
npz checksum and a checksum of the JSON content itself). Each is written to a temporary file and
moved into place with ``os.replace``, the JSON last, so a reader that finds the JSON finds a
complete npz whose checksum it can verify. A record that fails either check is reported with a
warning and treated as missing (recomputed). Temporary files are never read; those a killed
writer left behind are removed by later writes to the same folder once they are stale.
"""

import io
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from ._hashing import hash_json, new_hasher

# A temporary file lives only while one record is written; one older than this was left by a
# writer that was killed (kill -9, power loss) and is removed by the next write in its folder.
STALE_TEMP_SECONDS = 3600


class CorruptRecordWarning(UserWarning):
    """A stored record failed its checksum or could not be parsed; it will be recomputed."""


def default_cache_dir():
    """``$SKMLL_CACHE_DIR`` if set, else ``~/.cache/skmll``."""
    return Path(os.environ.get("SKMLL_CACHE_DIR", Path.home() / ".cache" / "skmll"))


def resolve_cache_dir(cache_dir):
    """Map the ``cache_dir`` parameter to a folder: None is the default, False disables caching."""
    if cache_dir is False:
        return None
    path = default_cache_dir() if cache_dir is None else Path(cache_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_record(folder, key, arrays, meta):
    """Store ``arrays`` (name -> numeric ndarray) and ``meta`` (JSON-able dict) under ``key``."""
    arrays = {name: np.asarray(a) for name, a in arrays.items()}
    for name, array in arrays.items():
        if array.dtype.hasobject:  # object arrays would need pickle to load
            raise ValueError(f"array {name!r} has dtype object; records hold numeric arrays only")
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    payload = buffer.getvalue()
    checksum = new_hasher()
    checksum.update(payload)
    folder = Path(folder)
    atomic_write_bytes(folder / f"{key}.npz", payload)
    # Checksummed as a reader will parse it, so bit rot in the metadata is caught too.
    record = json.loads(json.dumps(
        {"meta": meta, "npz_checksum": checksum.hexdigest(), "arrays": sorted(arrays)}))
    record["json_checksum"] = hash_json(record)
    atomic_write_bytes(folder / f"{key}.json", json.dumps(record).encode())
    remove_stale_temp_files(folder)


def remove_stale_temp_files(folder, max_age=STALE_TEMP_SECONDS):
    """Delete the temporary files of interrupted writes in ``folder`` older than ``max_age`` s.

    Younger ones may belong to a write in progress (another process) and are left alone.
    """
    deadline = time.time() - max_age
    for path in Path(folder).glob(".*.tmp"):
        try:
            if path.stat().st_mtime < deadline:
                path.unlink()
        except FileNotFoundError:  # removed meanwhile by another writer
            pass


def load_record(folder, key):
    """Return ``(arrays, meta)`` for ``key``, or None when absent or corrupt (with a warning)."""
    folder = Path(folder)
    json_path, npz_path = folder / f"{key}.json", folder / f"{key}.npz"
    if not json_path.exists():
        return None
    try:
        record = json.loads(json_path.read_text())
        if not isinstance(record, dict) or record.get("json_checksum") != hash_json(
                {k: v for k, v in record.items() if k != "json_checksum"}):
            raise ValueError("JSON checksum mismatch")
        payload = npz_path.read_bytes()
        checksum = new_hasher()
        checksum.update(payload)
        if checksum.hexdigest() != record["npz_checksum"]:
            raise ValueError("npz checksum mismatch")
        with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in record["arrays"]}
        return arrays, record["meta"]
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        warnings.warn(
            f"cached record {json_path.with_suffix('')} is unreadable ({exc}); recomputing it",
            CorruptRecordWarning,
            stacklevel=2,
        )
        return None
