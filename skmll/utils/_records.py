"""Crash-safe, self-describing storage of arrays + JSON: atomic writes, checksums, never pickle.

A record stored under ``key`` is two files in one folder:

- ``<key>.<checksum>.npz``, the payload: plain numeric arrays, named by the checksum of its
  bytes;
- ``<key>.json``, the pointer: the record's format number, its own key, the caller's metadata,
  the payload's name and checksum, and a checksum of the JSON content itself.

An update writes the new payload beside the old one, then moves the new JSON into place with
``os.replace`` (atomic), then removes the old payload. A writer killed at any point leaves the
old record or the new one whole: the old JSON still names the old payload, never one it does
not match. A reader takes no lock: it reads the JSON, then the payload the JSON names (reading
the JSON again when a writer replaced the record in between).

A record is refused (a :class:`CorruptRecordWarning`, then treated as missing and recomputed)
when a checksum fails, when it was written in another format, or when its own key is not the
key it was found under: a record copied over another one is never used as that one.

Reads are bounded before anything is allocated: a payload larger than ``MAX_PAYLOAD_BYTES`` is
refused unread, and each array's header must declare the shape the caller expects (when it
says) and exactly as many bytes as the archive stores for it, uncompressed (the writer never
compresses; a compressed member could expand without bound). A record that declares a huge
array, or a small archive that would decompress to gigabytes, is a corrupt record, not a
``MemoryError``.

Files are created with mode ``0o666`` filtered by the umask (or the folder's default ACL), and in
a set-gid folder they take the folder's group, so a folder shared by a group stays usable by all
of its members. Temporary files (``.<name>.<random>.tmp``) are never read; those a killed writer
left behind, and payloads no JSON names, are removed by the next write in their folder once they
are older than ``STALE_TEMP_SECONDS`` (younger ones may belong to a write in progress in another
process). Only writers sweep, and never a folder that is a symbolic link (it may lead anywhere).
"""

import io
import json
import math
import os
import secrets
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np

from ._hashing import hash_json, new_hasher

# A temporary file lives only while one record is written; one older than this was left by a
# writer that was killed (kill -9, power loss) and is removed by the next write in its folder.
STALE_TEMP_SECONDS = 3600

# 1 was the unversioned pair <key>.npz + <key>.json of skmll 0.1: its JSON carried no key, so a
# record copied over another was read as that other one. Such records are recomputed.
RECORD_FORMAT = 2

# The largest payload read (bytes on disk, so also in memory): a label record of 20,000 nodes
# by 22,000 heads (ImageNet-21k) in float64 is 7 GB.
MAX_PAYLOAD_BYTES = 8 * 2**30
# A record's JSON holds metadata and node keys: megabytes at the paper's scale.
MAX_JSON_BYTES = 256 * 2**20
# np.save writes format 1.0 headers, 2.0 when they exceed 64 KiB; 3.0 adds utf-8 field names.
_NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}


class CorruptRecordWarning(UserWarning):
    """A stored record failed its checks (checksum, format, key); it will be recomputed."""


class CacheWriteWarning(UserWarning):
    """A result could not be stored (read-only folder, full disk, lock timeout); it is kept in
    memory for this run only."""


class RecordError(ValueError):
    """Why a stored record cannot be used."""


class ForeignRecordError(RecordError):
    """A record's own key is not the key it was found under (copied or moved over another)."""


class _FormatOneRecord(RecordError):
    """A record of skmll 0.1: not wrong, only unchecked; read as absent and rewritten."""


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
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one.

    The file's permissions follow the umask (and the folder's default ACL and set-gid group),
    as for any file a program creates.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    # Created by os.open with 0o666, not by mkstemp: mkstemp's 0o600 survives os.replace and
    # locks every other member of a team out of a shared folder.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _checksum(payload):
    hasher = new_hasher()
    hasher.update(payload)
    return hasher.hexdigest()


def save_record(folder, key, arrays, meta, *, sweep=True):
    """Store ``arrays`` (name -> numeric ndarray) and ``meta`` (JSON-able dict) under ``key``.

    Then, when ``sweep``, remove the folder's leftovers of interrupted writes
    (:func:`remove_stale_files`). Raises OSError when the folder cannot be written; the record
    stored before, if any, is then left whole.
    """
    arrays = {name: np.asarray(a) for name, a in arrays.items()}
    for name, array in arrays.items():
        if array.dtype.hasobject:  # object arrays would need pickle to load
            raise ValueError(f"array {name!r} has dtype object; records hold numeric arrays only")
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    payload = buffer.getvalue()
    checksum = _checksum(payload)
    folder = Path(folder)
    json_path, payload_name = folder / f"{key}.json", f"{key}.{checksum}.npz"
    previous = payload_named_by(json_path, key)
    atomic_write_bytes(folder / payload_name, payload)
    # Checksummed as a reader will parse it, so bit rot in the metadata is caught too.
    record = json.loads(json.dumps({"format": RECORD_FORMAT, "key": key, "meta": meta,
                                    "npz": payload_name, "npz_checksum": checksum,
                                    "arrays": sorted(arrays)}))
    record["json_checksum"] = hash_json(record)
    atomic_write_bytes(json_path, json.dumps(record).encode())
    if previous not in (None, payload_name):
        (folder / previous).unlink(missing_ok=True)
    (folder / f"{key}.npz").unlink(missing_ok=True)  # the payload of a format-1 record
    if sweep:
        remove_stale_files(folder)


def payload_named_by(json_path, key):
    """The payload file name the JSON at ``json_path`` names, or None (absent, unreadable).

    Only a plain ``<key>.<...>.npz`` name in the same folder is returned, whatever the JSON says.
    """
    try:
        name = json.loads(Path(json_path).read_text()).get("npz")
    except (OSError, ValueError, AttributeError):
        return None
    if isinstance(name, str) and name == Path(name).name and name.startswith(f"{key}.") \
            and name.endswith(".npz"):
        return name
    return None


def check_pointer(text, key):
    """Parse a record's JSON and check it against the ``key`` it was found under.

    Raises
    ------
    RecordError
        Unparsable, checksum mismatch, another format, or a payload name that does not match.
    ForeignRecordError
        The record's own key is another one.
    """
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError(f"its JSON does not parse: {exc}") from None
    if not isinstance(record, dict) or record.get("json_checksum") != hash_json(
            {k: v for k, v in record.items() if k != "json_checksum"}):
        raise RecordError("JSON checksum mismatch")
    if "format" not in record:
        raise _FormatOneRecord("it was written in record format 1 (skmll 0.1)")
    if record.get("format") != RECORD_FORMAT:
        raise RecordError(f"it was written in record format {record.get('format', 1)}, not "
                          f"{RECORD_FORMAT} (another skmll version)")
    if record.get("key") != key:
        raise ForeignRecordError(f"it is the record of key {record.get('key')!r}, copied or "
                                 "moved here")
    if record.get("npz") != f"{key}.{record.get('npz_checksum')}.npz":
        raise RecordError("its payload name does not match its key and checksum")
    return record


def read_record(folder, key, *, shapes=None):
    """Return ``(arrays, meta)`` for ``key``, or None when absent; raise when it is unusable.

    Parameters
    ----------
    folder : path
    key : str
    shapes : callable, optional
        ``shapes(meta)`` -> ``{array name: shape}``: the shapes the record's metadata declares.
        Each array's header must declare its shape before the array is read (a ``RecordError``
        from it refuses the record).

    Raises
    ------
    RecordError
        Any failed check (see :func:`check_pointer`), a missing, damaged, oversized or
        compressed payload, an array whose header disagrees with ``shapes`` or with its size.
    """
    folder = Path(folder)
    json_path = folder / f"{key}.json"
    try:
        text = _read_bounded(json_path, MAX_JSON_BYTES).decode("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordError(f"its JSON cannot be read: {exc}") from None
    try:
        record = check_pointer(text, key)
    except _FormatOneRecord:
        return None  # recomputed quietly: an upgrade is no damage worth a warning per record
    declared = {} if shapes is None else shapes(record["meta"])
    try:
        payload = _read_bounded(folder / record["npz"], MAX_PAYLOAD_BYTES)
    except OSError as exc:
        if _text_or_none(json_path) not in (text, None):
            return read_record(folder, key, shapes=shapes)  # replaced by a writer meanwhile
        raise RecordError(f"its payload cannot be read: {exc}") from None
    if _checksum(payload) != record["npz_checksum"]:
        raise RecordError("npz checksum mismatch")
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            arrays = {name: _read_member(archive, name, declared.get(name))
                      for name in record["arrays"]}
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError) as exc:
        if isinstance(exc, RecordError):
            raise
        raise RecordError(f"its payload does not load: {exc}") from None
    return arrays, record["meta"]


def _read_bounded(path, limit):
    """The bytes of ``path``, refused (RecordError) unread when the file is over ``limit``."""
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size > limit:
            raise RecordError(f"{Path(path).name} is {size} bytes, over the {limit} bytes a "
                              "record may take")
        return file.read(limit + 1)


def _read_member(archive, name, expected_shape):
    """One ``.npy`` member of an npz archive, its header checked before its data is read."""
    info = archive.getinfo(f"{name}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        raise RecordError(f"array {name!r} is compressed; records are written uncompressed, and "
                          "a compressed array could expand without bound")
    with archive.open(info) as member:
        reader = _NPY_HEADER_READERS.get(np.lib.format.read_magic(member))
        if reader is None:
            raise RecordError(f"array {name!r} has an unsupported .npy header version")
        shape, fortran_order, dtype = reader(member)
        if dtype.hasobject:
            raise RecordError(f"array {name!r} has dtype object; records hold numeric arrays")
        if expected_shape is not None and tuple(shape) != tuple(expected_shape):
            raise RecordError(f"array {name!r} declares shape {tuple(shape)} where the record's "
                              f"metadata declares {tuple(expected_shape)}")
        n_bytes = math.prod(shape) * dtype.itemsize
        stored = info.file_size - member.tell()
        if stored != n_bytes:
            raise RecordError(f"array {name!r} declares shape {tuple(shape)} ({n_bytes} bytes) "
                              f"but the archive holds {stored} bytes of data")
        data = bytearray(n_bytes)
        if member.readinto(data) != n_bytes:
            raise RecordError(f"array {name!r} is truncated")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")


def _text_or_none(path):
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError):
        return None


def warn_unusable(folder, key, reason, stacklevel=3):
    """The one warning for a refused record: it names the record and says why."""
    warnings.warn(f"cached record {Path(folder) / key} is unreadable ({reason}); recomputing it",
                  CorruptRecordWarning, stacklevel=stacklevel)


def load_record(folder, key, *, expect=None):
    """Return ``(arrays, meta)`` for ``key``, or None when absent or unusable (with a warning).

    Parameters
    ----------
    folder : path
    key : str
    expect : dict, optional
        Metadata entries the record must carry (what it was computed from); a record whose
        metadata disagrees is refused like a corrupt one.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> folder = tempfile.mkdtemp()
    >>> save_record(folder, "k1", {"x": np.arange(3)}, {"source": "demo"})
    >>> arrays, meta = load_record(folder, "k1", expect={"source": "demo"})
    >>> arrays["x"].tolist(), meta
    ([0, 1, 2], {'source': 'demo'})
    """
    try:
        loaded = read_record(folder, key)
        if loaded is not None and expect:
            wrong = sorted(name for name, value in expect.items() if loaded[1].get(name) != value)
            if wrong:
                raise ForeignRecordError(f"it was computed from another {', '.join(wrong)}")
        return loaded
    except RecordError as exc:
        warn_unusable(folder, key, exc)
        return None


def _scan_names(folder):
    """File names in ``folder`` by record: ``({key: (json name or None, [payload names])},
    [temp names])``. Names only: every write scans its folder, so no Path per entry."""
    records, temps = {}, []
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return records, temps
    for name in names:
        if name.startswith(".") and name.endswith(".tmp"):
            temps.append(name)
        elif name.endswith(".json") and not name.startswith("."):
            key = name[:-5]
            records[key] = (name, records.get(key, (None, []))[1])
        elif name.endswith(".npz") and name.count(".") == 2:
            records.setdefault(name.split(".")[0], (None, []))[1].append(name)
    return records, temps


def record_files(folder):
    """Scan ``folder`` once: ``({key: (json path or None, [payload paths])}, [temp paths])``."""
    records, temps = _scan_names(folder)
    folder = Path(folder)
    return ({key: (None if json_name is None else folder / json_name,
                   [folder / name for name in payloads])
             for key, (json_name, payloads) in records.items()},
            [folder / name for name in temps])


def stale_files(folder, max_age=STALE_TEMP_SECONDS, *, read_all=False):
    """Leftovers of interrupted writes in ``folder`` older than ``max_age`` seconds.

    Temporary files, and payloads their key's JSON does not name. JSON files are read only for
    keys with several payloads or none named (cheap on every write) unless ``read_all``.
    """
    deadline = time.time() - max_age
    folder = Path(folder)
    records, temps = _scan_names(folder)
    candidates = [folder / name for name in temps]
    for key, (json_name, payloads) in records.items():
        if not payloads or (len(payloads) == 1 and json_name is not None and not read_all):
            continue
        named = payload_named_by(folder / json_name, key) if json_name is not None else None
        candidates += [folder / name for name in payloads if name != named]
    return [path for path in candidates if _modified_before(path, deadline)]


def _modified_before(path, deadline):
    try:
        return path.stat().st_mtime < deadline
    except FileNotFoundError:  # removed meanwhile by another writer
        return False


def remove_stale_files(folder, max_age=STALE_TEMP_SECONDS):
    """Delete what :func:`stale_files` finds; files another process holds or removed are skipped.

    Younger leftovers may belong to a write in progress (another process) and are left alone. A
    folder that is a symbolic link is left alone: it may lead to files that are not records.
    """
    if os.path.islink(folder):
        return
    for path in stale_files(folder, max_age):
        try:
            path.unlink()
        except OSError:  # removed meanwhile, or a folder this user may only read
            pass
