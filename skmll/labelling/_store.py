"""The label directory: each expert's node sums, shared between runs, processes and machines."""

import json
import logging
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import filelock
import numpy as np

from .._version import __version__
from ..hub import ExpertCost, n_heads
from ..utils import (
    CacheWriteWarning,
    CorruptRecordWarning,
    ForeignRecordError,
    RecordError,
    atomic_write_bytes,
    read_record,
    remove_stale_files,
    resolve_cache_dir,
    save_record,
)
from ..utils._records import STALE_TEMP_SECONDS, check_pointer, record_files, stale_files

logger = logging.getLogger(__name__)

STORE_FOLDER = "labels"
"""The label store's folder inside a cache or label directory (``DIR/labels``)."""
LAYOUT_FILE = "skmll-labels.json"
LAYOUT_VERSION = 1
STATISTICS = ("logit_sums", "probability_sums", "counts")
# Waiting for a lock means another process is labelling that expert, which can take long on a
# large SDAG; past this, the expert is labelled here too and kept in memory.
LOCK_TIMEOUT = 3600.0
LOCK_LOG_INTERVAL = 10.0
# Records of skmll 0.1 lay flat in the label folder, named by a 32-digit expert key.
_LEGACY_NAME_LENGTH = 32


@dataclass(frozen=True)
class LabelRecordInfo:
    """One expert record of a label directory, as :meth:`LabelStore.scan` finds it.

    Attributes
    ----------
    key : str
        The expert's content key (its file name): a hash of its declared fingerprint and width.
    expert : str or None
        The name the expert had when its record was last written.
    fingerprint : str or None
        The expert's declared fingerprint (weights and preprocessing).
    n_nodes : int
        Nodes with stored sums.
    n_heads : int or None
    size : int
        Bytes on disk (JSON and payloads).
    modified : float
        When the record was last written (seconds since the epoch).
    status : {"ok", "corrupt", "foreign", "invalid"}
        "corrupt": unreadable or failing a checksum or format check; "foreign": its own key is
        another expert's (copied over this one); "invalid": rows with a count <= 0 or
        non-finite sums (:meth:`LabelStore.verify` only).
    reason : str
        Why the status is not "ok".
    """

    key: str
    expert: str = None
    fingerprint: str = None
    n_nodes: int = 0
    n_heads: int = None
    size: int = 0
    modified: float = 0.0
    status: str = "ok"
    reason: str = ""


@dataclass(frozen=True)
class PrunePlan:
    """What :meth:`LabelStore.prune` deletes (or deleted, when ``executed``).

    Attributes
    ----------
    items : tuple of (Path, str)
        Each file and why it goes.
    size : int
        Bytes freed.
    executed : bool
    """

    items: tuple
    size: int
    executed: bool


class LabelStore:
    """A label directory: every expert's node sums, checked, shared and safe to write at once.

    ``ModelLabeler(cache_dir=...)`` keeps its records in ``<cache_dir>/labels``, which
    :meth:`from_cache_dir` opens. The directory is the unit to share: label a hub on one
    machine (or a cluster writing into one directory), copy the directory, and a labeler on
    another machine with the same experts and SDAG reads every label from it without running
    (or loading) any expert. Nothing in it is pickled: arrays are ``.npz`` read with
    ``allow_pickle=False``, everything else is JSON.

    Layout::

        skmll-labels.json                layout version of the directory ({"version": 1})
        v1/<key>.json                    one record per expert: its own key, metadata, checksums
        v1/<key>.<checksum>.npz          its arrays: logit_sums, probability_sums, counts
        .locks/<key>.lock                per-expert lock files

    ``<key>`` is the expert's content key (a hash of its declared fingerprint, which covers its
    weights and preprocessing, and its width); a record holds one row per SDAG node with images,
    keyed by the hash of that node's images, so the same record serves every SDAG that shares
    nodes with it. A later layout goes to another ``v<n>/`` folder; a directory whose layout
    file names a newer version than this skmll reads is refused with an error.

    Every record carries its own key: the expert's key, name, declared fingerprint and
    specification (when the expert has one), its width, the statistic names, the node data
    keys, the skmll version and the format numbers; and what the expert costs per image
    (:class:`~skmll.hub.ExpertCost`, :meth:`cost`), measured when it was labelled (records
    written before costs were recorded have none, read as unknown). Reading checks the
    checksums, that this key is the one the record was found under, that the width is the
    expert's, that the arrays match the node keys, and drops rows with a count <= 0 or
    non-finite sums. Whatever fails is reported with a
    :class:`~skmll.utils.CorruptRecordWarning` and recomputed, never used: a record copied over
    another expert's is refused, not read as that expert's labels.

    Writers take the expert's lock (:mod:`filelock`, logging every ten seconds while they wait),
    re-read the record, merge their new rows and write it back; readers take no lock. A record
    update writes the new arrays beside the old ones and then switches the JSON atomically, so a
    writer killed at any point leaves the previous record whole. Two processes labelling into
    one directory take turns per expert: each runs the experts the other has not started and
    reads the others' labels from the directory. Files follow the umask and the directory's
    set-gid group, so a directory a team shares (``chmod g+s``, umask 002) stays writable by all.
    A record that cannot be written (read-only directory, full disk) is reported with a
    :class:`~skmll.utils.CacheWriteWarning` naming its path; the labels are still used.

    Parameters
    ----------
    root : path
        The label directory (created at the first write).
    lock_timeout : float, default=3600
        Seconds to wait for an expert's lock before giving up (and, in a labeler, labelling
        that expert without storing it).

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from skmll import ModelHub, ModelLabeler, SemanticDAG
    >>> from skmll.labelling import LabelStore
    >>> sdag = SemanticDAG(["dark", "light"], data={"dark": np.zeros((2, 4, 4), np.uint8),
    ...                                            "light": np.full((2, 4, 4), 255, np.uint8)})
    >>> class Brightness:
    ...     name, n_outputs, fingerprint = "brightness", 2, "brightness-v1"
    ...     def logits(self, images):
    ...         m = images.mean(axis=(1, 2, 3))
    ...         return np.stack([1 - m, m], axis=1)
    >>> cache_dir = tempfile.mkdtemp()
    >>> _ = ModelLabeler(sdag, cache_dir=cache_dir, verbose=0).fit(ModelHub([Brightness()]))
    >>> store = LabelStore.from_cache_dir(cache_dir)
    >>> [(r.expert, r.n_nodes, r.n_heads, r.status) for r in store.verify()]
    [('brightness', 2, 2, 'ok')]
    >>> store.prune().items
    ()
    """

    def __init__(self, root, *, lock_timeout=LOCK_TIMEOUT):
        self.root = Path(root)
        self.lock_timeout = lock_timeout
        self.records = self.root / f"v{LAYOUT_VERSION}"
        self.locks = self.root / ".locks"
        self._check_layout()
        self._locks = {}
        self._locks_guard = threading.Lock()

    def _sweepable(self):
        """Whether writers may remove leftovers here: never through a symbolic link (the
        directory or its record folder), which may lead to folders that hold no records."""
        return not (self.root.is_symlink() or self.records.is_symlink())

    @classmethod
    def from_cache_dir(cls, cache_dir=None, **kwargs):
        """The label directory of a ``cache_dir`` (None: the default folder; False: None).

        Parameters
        ----------
        cache_dir : path, None or False
        **kwargs
            Passed to :class:`LabelStore`.

        Returns
        -------
        LabelStore or None
        """
        folder = resolve_cache_dir(cache_dir)
        return None if folder is None else cls(folder / STORE_FOLDER, **kwargs)

    def __repr__(self):
        return f"LabelStore({str(self.root)!r})"

    # -- layout ------------------------------------------------------------------------------

    def _check_layout(self):
        path = self.root / LAYOUT_FILE
        try:
            layout = json.loads(path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path} is unreadable ({exc}); it should name the layout version "
                             "of this label directory") from None
        if not isinstance(layout, dict) or layout.get("format") != "skmll-labels" \
                or not isinstance(layout.get("version"), int):
            raise ValueError(f"{path} does not describe a skmll label directory")
        if layout["version"] > LAYOUT_VERSION:
            raise ValueError(f"{self.root} is a label directory of layout version "
                             f"{layout['version']}, written by a newer skmll; this one reads "
                             f"version {LAYOUT_VERSION}: upgrade skmll")

    def _write_layout_file(self):
        path = self.root / LAYOUT_FILE
        if not path.exists():
            atomic_write_bytes(path, json.dumps(
                {"format": "skmll-labels", "version": LAYOUT_VERSION,
                 "records": self.records.name}).encode())

    # -- locks -------------------------------------------------------------------------------

    def lock_path(self, key):
        """The lock file of the expert with content key ``key``."""
        return self.locks / f"{key}.lock"

    def _lock(self, key):
        with self._locks_guard:
            if key not in self._locks:
                # Not thread-local: a labeler takes the lock where joblib dispatches tasks (a
                # callback thread) and releases it where the results arrive (the main thread).
                self._locks[key] = filelock.FileLock(self.lock_path(key), thread_local=False)
            return self._locks[key]

    def acquire(self, key, *, blocking=True):
        """Take the lock of ``key`` (re-entrant within this store).

        Parameters
        ----------
        key : str
        blocking : bool, default=True
            False: return at once, False when another process holds the lock. True: wait up
            to ``lock_timeout`` seconds, logging (``logging.INFO``) every ten seconds.

        Returns
        -------
        bool

        Raises
        ------
        OSError
            The lock cannot be created (read-only directory), or :class:`filelock.Timeout`.
        """
        self.locks.mkdir(parents=True, exist_ok=True)
        lock = self._lock(key)
        if not blocking:
            try:
                lock.acquire(blocking=False)
            except filelock.Timeout:
                return False
            return True
        started = time.monotonic()
        while True:
            remaining = self.lock_timeout - (time.monotonic() - started)
            try:
                lock.acquire(timeout=max(0.0, min(LOCK_LOG_INTERVAL, remaining)))
                return True
            except filelock.Timeout:
                if remaining <= LOCK_LOG_INTERVAL:
                    raise
                logger.info("waiting for %s: another process is writing this expert's labels "
                            "(%.0f s so far, giving up after %.0f s)", lock.lock_file,
                            time.monotonic() - started, self.lock_timeout)

    def release(self, key):
        """Release the lock of ``key`` once (see :meth:`acquire`)."""
        self._lock(key).release()

    @contextmanager
    def locked(self, key):
        """``with store.locked(key):`` holds the lock of ``key`` (blocking, with a timeout)."""
        self.acquire(key)
        try:
            yield
        finally:
            self.release(key)

    # -- records -----------------------------------------------------------------------------

    def load(self, key, *, n_heads=None, warn=True):
        """The checked node sums of the expert with content key ``key``; no lock taken.

        Parameters
        ----------
        key : str
            :func:`skmll.hub.expert_fingerprint` of the expert.
        n_heads : int, optional
            The expert's width; a record of another width is refused.
        warn : bool, default=True
            Report refused records and rows with a :class:`~skmll.utils.CorruptRecordWarning`.

        Returns
        -------
        dict
            Node data hash -> ``(logit_sums row, probability_sums row, count)``; empty when the
            record is absent or refused.
        """
        return self._read(key, n_heads, warn)[0]

    def _read(self, key, width, warn):
        """``(rows, cost or None)`` of a record, as :meth:`load` checks them."""
        try:
            loaded = read_record(self.records, key, shapes=_declared_shapes)
            if loaded is None:
                return {}, None
            rows, dropped = _label_rows(key, *loaded, width=width)
        except RecordError as exc:
            if warn:
                warnings.warn(f"cached record {self.records / key} is unreadable ({exc}); "
                              "recomputing it", CorruptRecordWarning, stacklevel=3)
            return {}, None
        if dropped and warn:
            warnings.warn(f"cached record {self.records / key} has {dropped} row(s) with a "
                          "count <= 0 or non-finite sums; recomputing them",
                          CorruptRecordWarning, stacklevel=3)
        return rows, _stored_cost(self.records / key, loaded[1], warn)

    def cost(self, key, *, warn=True):
        """The :class:`~skmll.hub.ExpertCost` stored with the expert of content key ``key``.

        Read from the record's JSON alone (no payload); no lock taken.

        Parameters
        ----------
        key : str
        warn : bool, default=True
            Report a malformed cost with a :class:`~skmll.utils.CorruptRecordWarning`.

        Returns
        -------
        ExpertCost or None
            None when there is no record, the record is refused, or it was written without a
            cost (by skmll before costs were recorded): then the cost is unknown, never guessed.
        """
        try:
            meta = check_pointer((self.records / f"{key}.json").read_text(), key)["meta"]
            _check_record_key(key, meta)
        except (OSError, UnicodeDecodeError, RecordError):
            return None   # absent or refused: load() reports and recomputes it
        return _stored_cost(self.records / key, meta, warn)

    def merge(self, key, rows, *, expert, cost=None):
        """Add ``rows`` to the record of ``key`` under its lock: re-read, merge, write.

        Rows already stored for a node are kept (the same expert on the same images gives the
        same sums), and so is a stored cost; nothing is written when every row is already there
        and the record has a cost or none is given.

        Parameters
        ----------
        key : str
            :func:`skmll.hub.expert_fingerprint` of ``expert``.
        rows : dict
            Node data hash -> ``(logit_sums row, probability_sums row, count)``.
        expert : expert
            Its name, declared fingerprint, ``spec`` (when it has one) and width are recorded.
        cost : ExpertCost or None, default=None
            What the expert costs per image, recorded with the rows unless the record has one.

        Returns
        -------
        bool
            False when the record could not be written (then a
            :class:`~skmll.utils.CacheWriteWarning` names its path).
        """
        width = n_heads(expert)
        try:
            with self.locked(key):
                stored, stored_cost = self._read(key, width, warn=False)
                if set(rows) <= set(stored) and (cost is None or stored_cost is not None):
                    return True
                merged = {**rows, **stored}
                self._write_layout_file()
                save_record(self.records, key, _stack_rows(merged),
                            _record_meta(key, expert, width, sorted(merged),
                                         stored_cost or cost), sweep=False)
            if self._sweepable():
                for folder in (self.root, self.records):
                    remove_stale_files(folder)
            return True
        except OSError as exc:
            warnings.warn(f"could not store the labels of expert {expert.name!r} in "
                          f"{self.records / key}.json ({exc}); they are kept in memory only",
                          CacheWriteWarning, stacklevel=2)
            return False

    # -- maintenance -------------------------------------------------------------------------

    def scan(self):
        """Every record of the directory, from its JSON alone (fast; payloads are not read).

        Returns
        -------
        list of LabelRecordInfo
            Sorted by key; ``status`` is "ok", "corrupt" or "foreign".
        """
        return [self._info(key, json_path, payloads, full=False)
                for key, (json_path, payloads) in sorted(record_files(self.records)[0].items())
                if json_path is not None]

    def verify(self):
        """Read every record in full and check it; warn about each one that is not "ok".

        Checks the checksums, each record's own key against its file name, the arrays against
        the node keys and width, and the values (counts > 0, finite sums).

        Returns
        -------
        list of LabelRecordInfo
            Sorted by key.
        """
        infos = self._verified()
        for info in infos:
            if info.status != "ok":
                warnings.warn(f"label record {self.records / info.key} is {info.status}: "
                              f"{info.reason}", CorruptRecordWarning, stacklevel=2)
        return infos

    def _verified(self):
        return [self._info(key, json_path, payloads, full=True)
                for key, (json_path, payloads) in sorted(record_files(self.records)[0].items())
                if json_path is not None]

    def _info(self, key, json_path, payloads, *, full):
        meta, status, reason = {}, "ok", ""
        try:
            if full:
                loaded = read_record(self.records, key, shapes=_declared_shapes)
                if loaded is None:
                    raise RecordError("it was removed while being read")
                meta = loaded[1]
                dropped = _label_rows(key, *loaded)[1]
                if dropped:
                    status = "invalid"
                    reason = f"{dropped} row(s) with a count <= 0 or non-finite sums"
            else:
                meta = check_pointer(json_path.read_text(), key)["meta"]
                _check_record_key(key, meta)
        except ForeignRecordError as exc:
            status, reason = "foreign", str(exc)
        except (RecordError, OSError, UnicodeDecodeError) as exc:
            status, reason = "corrupt", str(exc)
        meta = meta if isinstance(meta, dict) else {}
        node_keys = meta.get("node_keys")
        return LabelRecordInfo(
            key=key, expert=meta.get("expert"), fingerprint=meta.get("fingerprint"),
            n_nodes=len(node_keys) if isinstance(node_keys, list) else 0,
            n_heads=meta.get("n_heads"), size=sum(_size(p) for p in [json_path, *payloads]),
            modified=_modified(json_path), status=status, reason=reason)

    def prune(self, *, dry_run=True, max_age=STALE_TEMP_SECONDS):
        """Plan, and unless ``dry_run`` delete, what the directory holds to no use.

        That is: records that :meth:`verify` does not pass (they would be recomputed anyway),
        payloads no record names and temporary files older than ``max_age`` seconds (left by
        interrupted writes; younger ones may be writes in progress), and records of the flat
        layout of skmll 0.1. Nothing else is touched; lock files are kept, since removing one
        that another process holds would let a third one in. When the directory or its record
        folder is a symbolic link (which may lead to a folder of other files), nothing is
        planned and a warning says so: prune the folder the link leads to.

        Parameters
        ----------
        dry_run : bool, default=True
            Only plan.
        max_age : float, default=STALE_TEMP_SECONDS

        Returns
        -------
        PrunePlan
        """
        if not self._sweepable():
            warnings.warn(f"{self.records} is reached through a symbolic link, which may lead to "
                          "files that are not records: nothing is pruned; prune the folder it "
                          "leads to", UserWarning, stacklevel=2)
            return PrunePlan((), 0, executed=not dry_run)
        bad = {info.key: f"{info.status} record: {info.reason}"
               for info in self._verified() if info.status != "ok"}
        records = record_files(self.records)[0]
        planned = {}
        for key, reason in bad.items():
            json_path, payloads = records[key]
            planned.update((path, reason) for path in [json_path, *payloads])
        for folder in (self.root, self.records):
            for path in stale_files(folder, max_age, read_all=True):
                planned.setdefault(path, "left by an interrupted write")
        for path in self._legacy_files():
            planned[path] = "record of the unversioned layout of skmll 0.1"
        plan = PrunePlan(tuple(sorted(planned.items())),
                         sum(_size(path) for path in planned), executed=not dry_run)
        if not dry_run:
            self._delete(plan, bad)
        return plan

    def _legacy_files(self):
        return sorted(path for path in self.root.glob("*.*")
                      if path.suffix in (".json", ".npz") and len(path.stem) == _LEGACY_NAME_LENGTH
                      and all(c in "0123456789abcdef" for c in path.stem))

    def _delete(self, plan, bad):
        records = record_files(self.records)[0]
        for key in bad:
            # Under the lock, and only if still bad: a labeler may have rewritten it meanwhile.
            with self.locked(key):
                json_path, payloads = records[key]
                if self._info(key, json_path, payloads, full=True).status != "ok":
                    for path in [json_path, *payloads]:
                        path.unlink(missing_ok=True)
        for path, _ in plan.items:
            if path.parent != self.records or path.name.split(".")[0] not in bad:
                path.unlink(missing_ok=True)


def _check_record_key(key, meta):
    """Raise unless ``meta`` is the metadata of a version-1 label record of ``key``."""
    if not isinstance(meta, dict):
        raise RecordError("its metadata is not a JSON object")
    if meta.get("expert_key") != key:
        raise ForeignRecordError(f"it holds the labels of expert key {meta.get('expert_key')!r}, "
                                 "copied or moved here")
    if meta.get("layout") != LAYOUT_VERSION or meta.get("statistics") != list(STATISTICS):
        raise RecordError(f"it holds {meta.get('statistics')} in layout {meta.get('layout')}, "
                          f"not {list(STATISTICS)} in layout {LAYOUT_VERSION}")


def _declared_shapes(meta):
    """The array shapes a label record's metadata declares, checked before its payload is read.

    Raises
    ------
    RecordError
        Metadata that declares no valid shape.
    """
    if not isinstance(meta, dict):
        raise RecordError("its metadata is not a JSON object")
    node_keys, width = meta.get("node_keys"), meta.get("n_heads")
    if not isinstance(node_keys, list) or isinstance(width, bool) \
            or not isinstance(width, int) or width < 1:
        raise RecordError(f"its metadata declares {type(node_keys).__name__} node keys and "
                          f"n_heads={width!r}")
    rows = len(node_keys)
    return {"logit_sums": (rows, width), "probability_sums": (rows, width), "counts": (rows,)}


def _label_rows(key, arrays, meta, width=None):
    """A record's rows after its checks, and how many rows were dropped for bad values.

    Raises
    ------
    RecordError
        Wrong key, layout or statistics; arrays that do not match the node keys and width.
    """
    _check_record_key(key, meta)
    if set(arrays) != set(STATISTICS):
        raise RecordError(f"it holds arrays {sorted(arrays)}, not {list(STATISTICS)}")
    logit_sums, probability_sums, counts = (arrays[name] for name in STATISTICS)
    node_keys, stored_width = meta.get("node_keys"), meta.get("n_heads")
    shape = (len(node_keys), stored_width) if isinstance(node_keys, list) else None
    if shape is None or not all(isinstance(k, str) for k in node_keys) \
            or len(set(node_keys)) != len(node_keys) \
            or logit_sums.shape != shape or probability_sums.shape != shape \
            or counts.shape != shape[:1] or not np.issubdtype(counts.dtype, np.integer) \
            or not all(np.issubdtype(a.dtype, np.floating) for a in (logit_sums, probability_sums)):
        raise RecordError(f"its arrays {[a.shape for a in (logit_sums, probability_sums, counts)]}"
                          " do not match its node keys and width")
    if width is not None and stored_width != width:
        raise RecordError(f"it has {stored_width} heads where the expert has {width}")
    good = (counts > 0) & np.isfinite(logit_sums).all(axis=1) \
        & np.isfinite(probability_sums).all(axis=1)
    rows = {node_key: (logit_sums[i], probability_sums[i], int(counts[i]))
            for i, node_key in enumerate(node_keys) if good[i]}
    return rows, int((~good).sum())


def _stack_rows(rows):
    keys = sorted(rows)
    return {"logit_sums": np.stack([rows[k][0] for k in keys]),
            "probability_sums": np.stack([rows[k][1] for k in keys]),
            "counts": np.array([rows[k][2] for k in keys], dtype=np.int64)}


def _stored_cost(where, meta, warn):
    """The cost a record's metadata holds; None when it holds none or a malformed one."""
    if "cost" not in meta:
        return None
    try:
        return ExpertCost.from_dict(meta["cost"])
    except (TypeError, ValueError) as exc:
        if warn:
            warnings.warn(f"cached record {where} holds a malformed cost ({exc}); it is "
                          "treated as unknown", CorruptRecordWarning, stacklevel=4)
        return None


def _record_meta(key, expert, width, node_keys, cost=None):
    declared = getattr(expert, "fingerprint", None)
    # The specification an expert was built from, when it has one; whatever JSON cannot hold
    # is written as its repr (the record describes the expert, its key identifies it).
    spec = json.loads(json.dumps(getattr(expert, "spec", None), default=repr))
    return {"layout": LAYOUT_VERSION, "expert_key": key, "expert": expert.name,
            "fingerprint": declared if isinstance(declared, str) else None, "spec": spec,
            "n_heads": width, "statistics": list(STATISTICS), "node_keys": node_keys,
            "skmll_version": __version__, **({} if cost is None else {"cost": cost.to_dict()})}


def _size(path):
    try:
        return path.stat().st_size
    except (OSError, AttributeError):  # removed meanwhile, or no such file (None)
        return 0


def _modified(path):
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
