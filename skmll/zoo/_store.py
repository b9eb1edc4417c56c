"""A zoo of labelled experts stored for search: immutable HDF5 segments behind one manifest.

Layout (a folder, ``zoo/`` inside a label directory when converted from one)::

    zoo.json                  the manifest: format, node ids, and the segments in order
    segments/<sha256>.h5      one per append, named by its content, never rewritten
    .lock                     taken by the one writer

A segment holds the experts of one append. Its arrays are node-major, so that a task reads its
classes' rows and nothing else: ``dense`` (nodes x columns, float16) holds the rows of experts
whose every head is kept (all of them, by default), ``sparse_values``/``sparse_heads``/``floor``
those of wider ones in a zoo created with ``max_dense`` (see :mod:`._rows`);
``index_order``/``index_d`` list, per node, the segment's experts by decreasing
responsiveness (see :mod:`._bound`). Every array is chunked by node (and
by 2^16 columns), shuffled and gzip-compressed: built-in HDF5 filters only, readable by any
HDF5 library.

Growth: an append writes a new segment file under a temporary name, renames it, then replaces
the manifest atomically. Readers read the manifest once (:meth:`ZooStore.refresh` reads it
again) and segment files never change, so a reader keeps a consistent zoo while a writer adds.

Trust and portability: the manifest is JSON, segment paths are relative and must stay inside
the folder, every segment's size and SHA-256 are in the manifest (:meth:`ZooStore.verify`), and
a segment is read only through plain datasets with built-in filters: an external link, an
external or virtual dataset, or a filter plug-in (which would load a shared library) is refused.
Before any array is read, a segment's shapes are checked against the manifest and against
each other (no expert can read another's rows), they may claim no more bytes than deflate can
produce from the file, and an expert declares at most 2^24 heads: opening a zoo allocates what
its files can hold. Nothing in a zoo runs code.
"""

import hashlib
import json
import os
import secrets
from collections import Counter
from pathlib import Path

import filelock
import numpy as np

from .._version import __version__
from ..utils import atomic_write_bytes
from ._bound import block_responsiveness, quantise_up
from ._rows import decoded_blocks, encode_rows

FORMAT = 1
MANIFEST = "zoo.json"
SEGMENTS = "segments"
_CHUNK_COLUMNS = 2**16
# HDF5 filter ids that are built into the library: deflate, shuffle, fletcher32.
_BUILT_IN_FILTERS = {1, 2, 3}
# Deflate expands a byte by at most ~1032 times: a segment's arrays, at the shapes it declares,
# can hold no more than this many times its size on disk (a larger claim is not a zoo's).
_MAX_INFLATION = 1100
# Most heads an expert may declare: decoding a row allocates one value per head.
_MAX_HEADS = 2**24
_EXPERT_FIELDS = ("expert_name", "expert_key", "expert_heads", "expert_column",
                  "expert_width", "expert_floor")


def _h5py():
    try:
        import h5py
    except ImportError as error:   # pragma: no cover - h5py is a dependency of skmll[zoo]
        raise ImportError("a zoo is stored in HDF5: pip install 'skmll[zoo]' (h5py)") from error
    return h5py


def _node_key(node_ids):
    return hashlib.sha256(json.dumps(list(node_ids)).encode()).hexdigest()


class ZooStore:
    """Experts' labels stored for search, read a node row at a time.

    Parameters
    ----------
    root : path
        The zoo folder (``<label dir>/zoo`` for a converted label directory).

    Attributes
    ----------
    node_ids : list of str
        The SDAG nodes with images that every expert's rows cover, in row order.
    names : list of str
        Every expert, in zoo order (the hub order selection breaks ties by).
    keys : list of str
        Each expert's label key as given when appended ("" where none was).
    n_heads : int ndarray
        Each expert's number of heads.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> root = tempfile.mkdtemp()
    >>> zoo = ZooStore.create(root, ["cat.n.01", "dog.n.01", "car.n.01"])
    >>> rows = np.array([[0.8, 0.2], [0.3, 0.7], [0.5, 0.5]])
    >>> zoo.append([("pets", rows)])
    >>> ZooStore(root).names
    ['pets']
    """

    def __init__(self, root):
        self.root = Path(root)
        self.refresh()

    @classmethod
    def create(cls, root, node_ids, *, max_dense=None, provenance=None):
        """An empty zoo over ``node_ids`` (refuses a folder that holds one already).

        ``max_dense`` (None: every head) is the most heads an expert's rows keep whole; a wider
        expert keeps that many entries per node and a floor (:func:`encode_rows`: less disk,
        selections no longer those of full precision). ``provenance`` (a JSON-able dict, e.g.
        the SDAG's key and Eq. 2's delta) is kept in the manifest as
        ``zoo.manifest["provenance"]``, for writers to check against.
        """
        root = Path(root)
        node_ids = [str(n) for n in node_ids]
        if len(set(node_ids)) != len(node_ids) or not node_ids:
            raise ValueError("a zoo needs distinct, non-empty node ids")
        if (root / MANIFEST).exists():
            raise FileExistsError(f"{str(root)!r} holds a zoo already")
        manifest = {"format": FORMAT, "skmll": __version__, "statistic": "probability",
                    "max_dense_heads": None if max_dense is None else int(max_dense), "node_ids": node_ids,
                    "node_key": _node_key(node_ids), "provenance": dict(provenance or {}),
                    "segments": []}
        atomic_write_bytes(root / MANIFEST, json.dumps(manifest, indent=1).encode())
        return cls(root)

    def refresh(self):
        """Read the manifest again: segments appended since are seen from now on."""
        path = self.root / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(f"{str(self.root)!r} is not a zoo (no {MANIFEST})")
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT:
            raise ValueError(f"{path}: zoo format {manifest.get('format')!r}; this skmll "
                             f"reads format {FORMAT}")
        if manifest["node_key"] != _node_key(manifest["node_ids"]):
            raise ValueError(f"{path}: its node ids do not match their key")
        self.manifest = manifest
        self.node_ids = list(manifest["node_ids"])
        self.node_index = {n: i for i, n in enumerate(self.node_ids)}
        old = {s.file: s for s in getattr(self, "segments", [])}
        self.segments, start = [], 0
        for entry in manifest["segments"]:
            segment = old.get(entry["file"]) or _Segment(self.root, entry, len(self.node_ids))
            segment.start = start
            start += segment.n_experts
            self.segments.append(segment)
        self.names = [name for s in self.segments for name in s.names]
        self.keys = [key for s in self.segments for key in s.keys]
        self.n_heads = np.concatenate([s.n_heads for s in self.segments] or [np.zeros(0, int)])
        return self

    @property
    def n_experts(self):
        return len(self.names)

    def append(self, experts, *, verbose=0):
        """Add experts as one new segment; nothing stored is rewritten.

        :meth:`write_segment` then :meth:`add_segments`: the segment is encoded and written
        without the lock, only the manifest update is serialised.

        Parameters
        ----------
        experts : iterable of (str, array-like of shape (n_nodes, n_heads)[, str])
            Each expert's name and probability rows on ``node_ids``, in that order, and
            optionally a key that identifies its label (e.g. the expert's fingerprint), kept in
            ``keys`` ("" when none is given).
        verbose : int, default=0
            Progress bar over the experts.
        """
        entry = self.write_segment(experts, verbose=verbose)
        if entry is not None:
            self.add_segments([entry])

    def write_segment(self, experts, *, verbose=0):
        """Encode ``experts`` into a new segment file, not yet in the manifest.

        Several processes (or cluster workers sharing the folder) can write segments at once;
        :meth:`add_segments` then lists them, in the order given. Returns the segment's
        manifest entry (a dict of plain values), or None when ``experts`` is empty.
        """
        from tqdm.auto import tqdm

        self.refresh()
        taken, encoded = set(self.names), []
        for name, rows, *key in tqdm(experts, disable=not verbose, desc="encode experts"):
            name = str(name)
            if not name.strip():
                raise ValueError(f"an expert needs a name; got {name!r}")
            if name in taken:
                raise ValueError(f"the zoo has an expert named {name!r} already")
            taken.add(name)
            rows = np.asarray(rows)
            if rows.ndim != 2 or rows.shape[0] != len(self.node_ids):
                raise ValueError(f"expert {name!r}: rows must be (n_nodes={len(self.node_ids)}, "
                                 f"n_heads), got shape {rows.shape}")
            encoded.append(_encode_expert(name, rows, self.manifest["max_dense_heads"]))
            encoded[-1]["key"] = str(key[0]) if key else ""
        return _write_segment(self.root, encoded, len(self.node_ids)) if encoded else None

    def add_segments(self, entries):
        """List segments written by :meth:`write_segment` in the manifest, in order, at once.

        Raises
        ------
        ValueError
            When an expert name would appear twice; the manifest is then left as it was.
        """
        with filelock.FileLock(str(self.root / ".lock")):
            self.refresh()
            added = [_Segment(self.root, entry, len(self.node_ids)) for entry in entries]
            names = self.names + [name for segment in added for name in segment.names]
            twice = sorted(n for n, count in Counter(names).items() if count > 1)
            if twice:
                raise ValueError(f"expert names {twice[:5]} would be in the zoo twice")
            manifest = dict(self.manifest, segments=self.manifest["segments"] + list(entries))
            atomic_write_bytes(self.root / MANIFEST, json.dumps(manifest, indent=1).encode())
        self.segments = self.segments + added     # opened and checked: refresh keeps them
        self.refresh()

    def verify(self):
        """Check every segment's size and SHA-256 against the manifest; raise on a mismatch."""
        for segment in self.segments:
            segment.verify()

    def locate(self, experts):
        """(segment, local indices, positions) for global expert indices, grouped by segment."""
        experts = np.asarray(experts, dtype=np.int64)
        starts = np.array([s.start for s in self.segments])
        which = np.searchsorted(starts, experts, side="right") - 1
        for s in np.unique(which):
            positions = np.flatnonzero(which == s)
            segment = self.segments[s]
            yield segment, experts[positions] - segment.start, positions

    def problems(self, node_rows, experts):
        """Decoded CHCO inputs: per expert (in the order given), its (n_heads, C) columns on
        ``node_rows``, each normalised to sum 1 (as :func:`~skmll.selection.reuse_problems`)."""
        problems = [None] * len(experts)
        for segment, local, positions in self.locate(experts):
            for position, P in zip(positions, segment.problems(node_rows, local)):
                problems[position] = P
        return problems

    def close(self):
        for segment in self.segments:
            segment.close()


def _encode_expert(name, rows, max_dense):
    try:
        values, heads, floor = encode_rows(rows, max_dense)
    except ValueError as error:
        raise ValueError(f"expert {name!r}: {error}") from None
    n_heads = rows.shape[1]
    sums = values.sum(axis=1, dtype=np.float64)
    if heads is not None:
        sums += floor.astype(np.float64) * (n_heads - values.shape[1])
    if not np.all(sums > 0):
        raise ValueError(f"expert {name!r}: a row has no probability mass once stored in "
                         f"float16 (node rows {np.flatnonzero(sums <= 0)[:5].tolist()})")
    d = block_responsiveness(decoded_blocks(values, heads, floor, n_heads), sums)
    return {"name": name, "n_heads": n_heads, "values": values, "heads": heads,
            "floor": floor, "d": quantise_up(d)}


def _dataset(file, name, data):
    n_rows, n_columns = data.shape
    chunks = (1, max(1, min(n_columns, _CHUNK_COLUMNS)))
    file.create_dataset(name, data=data, chunks=chunks if n_columns else None,
                        shuffle=bool(n_columns), compression="gzip" if n_columns else None,
                        compression_opts=4 if n_columns else None)


def _write_segment(root, encoded, n_nodes):
    h5py = _h5py()
    dense = [e for e in encoded if e["heads"] is None]
    sparse = [e for e in encoded if e["heads"] is not None]
    column = np.zeros(len(encoded), dtype=np.int64)
    floor_column = np.full(len(encoded), -1, dtype=np.int64)
    offsets = {"dense": 0, "sparse": 0}
    for i, e in enumerate(encoded):
        kind = "dense" if e["heads"] is None else "sparse"
        column[i] = offsets[kind]
        offsets[kind] += e["values"].shape[1]
    floor_column[[i for i, e in enumerate(encoded) if e["heads"] is not None]] = \
        np.arange(len(sparse))
    head_dtype = np.uint32 if any(e["heads"].dtype == np.uint32 for e in sparse) else np.uint16

    def stack(parts, dtype, width):
        return np.concatenate(parts, axis=1).astype(dtype) if parts else \
            np.zeros((n_nodes, width), dtype)

    d = np.stack([e["d"] for e in encoded], axis=1)             # (nodes, experts)
    # expert ids within the segment: two bytes each where they fit
    order = np.argsort(-d.astype(np.int16), axis=1, kind="stable").astype(
        np.uint16 if len(encoded) <= 2**16 else np.uint32)
    folder = Path(root) / SEGMENTS
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{secrets.token_hex(8)}.h5.tmp"
    try:
        with h5py.File(tmp, "w", track_order=False) as file:
            file.attrs["format"], file.attrs["skmll"] = FORMAT, __version__
            file.attrs["n_nodes"] = n_nodes
            names = np.array([e["name"] for e in encoded], dtype=h5py.string_dtype())
            file.create_dataset("expert_name", data=names)
            file.create_dataset("expert_key", data=np.array([e["key"] for e in encoded],
                                                            dtype=h5py.string_dtype()))
            file.create_dataset("expert_heads", data=[e["n_heads"] for e in encoded])
            file.create_dataset("expert_column", data=column)
            file.create_dataset("expert_width", data=[e["values"].shape[1] for e in encoded])
            file.create_dataset("expert_floor", data=floor_column)
            _dataset(file, "dense", stack([e["values"] for e in dense], np.float16, 0))
            _dataset(file, "sparse_values", stack([e["values"] for e in sparse], np.float16, 0))
            _dataset(file, "sparse_heads", stack([e["heads"] for e in sparse], head_dtype, 0))
            _dataset(file, "floor", stack([e["floor"][:, None] for e in sparse], np.float32, 0))
            _dataset(file, "index_order", order)
            _dataset(file, "index_d", np.take_along_axis(d, order.astype(np.int64), axis=1))
        digest = _sha256(tmp)
        name = f"{digest[:32]}.h5"     # content-addressed: no two writers collide
        os.replace(tmp, folder / name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {"file": f"{SEGMENTS}/{name}", "n_experts": len(encoded),
            "bytes": (folder / name).stat().st_size, "sha256": digest}


class _Segment:
    """One segment file, opened read-only on first use; node rows are cached per search."""

    def __init__(self, root, entry, n_nodes):
        self.file = entry["file"]
        self.entry = entry
        self.path = _inside(root, entry["file"])
        self.n_experts = int(entry["n_experts"])
        self._h5 = None
        with self._open_checked() as file:
            self._check_sizes(file, n_nodes)
            self.names, self.keys = ([n.decode() if isinstance(n, bytes) else str(n)
                                      for n in file[field][()]] if field in file else
                                     [""] * self.n_experts
                                     for field in ("expert_name", "expert_key"))
            self.n_heads = file["expert_heads"][()].astype(np.int64)
            self.column = file["expert_column"][()].astype(np.int64)
            self.width = file["expert_width"][()].astype(np.int64)
            self.floor_column = file["expert_floor"][()].astype(np.int64)
            self._check_layout(file, n_nodes)
        self._rows = {}

    def _refuse(self, why):
        raise ValueError(f"{self.path} is not a zoo segment as skmll writes them: {why}")

    def _check_sizes(self, file, n_nodes):
        """Before anything is read: the per-expert arrays hold the manifest's number of
        experts, every array has the zoo's node rows, and their sizes fit the file's."""
        for field in _EXPERT_FIELDS:
            if field in file and file[field].shape != (self.n_experts,):
                self._refuse(f"{field!r} has shape {file[field].shape}, the manifest lists "
                             f"{self.n_experts} experts")
        arrays = ("dense", "sparse_values", "sparse_heads", "floor", "index_order", "index_d")
        for name in arrays:
            if name not in file or file[name].ndim != 2 or file[name].shape[0] != n_nodes:
                self._refuse(f"{name!r} is missing or not {n_nodes} node rows")
        declared = sum(file[name].size * file[name].dtype.itemsize for name in arrays)
        if declared > _MAX_INFLATION * max(self.entry["bytes"], 1):
            self._refuse(f"its arrays claim {declared} bytes, more than {_MAX_INFLATION} times "
                         f"its {self.entry['bytes']} bytes on disk")

    def _check_layout(self, file, n_nodes):
        """Each expert's columns tile its array in order, dense ones hold every head, and the
        index lists every expert once per node: no expert reads another's rows."""
        dense = self.floor_column < 0
        if (self.n_heads < 1).any() or (self.n_heads > _MAX_HEADS).any():
            self._refuse(f"an expert declares fewer than 1 or more than {_MAX_HEADS} heads")
        if (self.width[dense] != self.n_heads[dense]).any() or \
                ((self.width[~dense] < 1) | (self.width[~dense] >= self.n_heads[~dense])).any():
            self._refuse("an expert's stored width does not fit its heads")
        if (self.floor_column[~dense] != np.arange((~dense).sum())).any():
            self._refuse("the floors are not one per wide expert, in order")
        for kind, name in ((dense, "dense"), (~dense, "sparse_values")):
            ends = np.cumsum(self.width[kind])
            if (self.column[kind] != ends - self.width[kind]).any() or \
                    file[name].shape[1] != (ends[-1] if len(ends) else 0):
                self._refuse(f"the experts' columns do not tile {name!r}")
        if file["sparse_heads"].shape != file["sparse_values"].shape or \
                file["floor"].shape[1] != (~dense).sum() or \
                file["index_order"].shape[1] != self.n_experts or \
                file["index_d"].shape[1] != self.n_experts:
            self._refuse("its head, floor or index arrays do not match its experts")

    def _open_checked(self):
        h5py = _h5py()
        size = self.path.stat().st_size
        if size != self.entry["bytes"]:
            raise ValueError(f"{self.path}: {size} bytes, the manifest says "
                             f"{self.entry['bytes']}: the file was changed or truncated")
        file = h5py.File(self.path, "r")
        try:
            for name in file:
                link = file.get(name, getlink=True)
                if not isinstance(link, h5py.HardLink):
                    raise ValueError(f"{self.path}: {name!r} is a link to elsewhere")
                dataset = file[name]
                if not isinstance(dataset, h5py.Dataset) or dataset.is_virtual or \
                        dataset.external:
                    raise ValueError(f"{self.path}: {name!r} is not a plain dataset")
                plist = dataset.id.get_create_plist()
                filters = {plist.get_filter(i)[0] for i in range(plist.get_nfilters())}
                if not filters <= _BUILT_IN_FILTERS:
                    raise ValueError(f"{self.path}: {name!r} needs HDF5 filters "
                                     f"{sorted(filters - _BUILT_IN_FILTERS)}, which are "
                                     "plug-ins (shared libraries); a zoo uses built-in ones")
        except BaseException:
            file.close()
            raise
        return file

    @property
    def h5(self):
        if self._h5 is None:
            self._h5 = self._open_checked()
        return self._h5

    def verify(self):
        digest = _sha256(self.path)
        if digest != self.entry["sha256"]:
            raise ValueError(f"{self.path}: SHA-256 {digest} differs from the manifest's")

    def lists(self, node_row, start, stop):
        """Local expert ids and their stored responsiveness at ranks [start, stop) of the
        node's list."""
        ids = self.h5["index_order"][node_row, start:stop].astype(np.int64)
        if len(ids) and ids.max() >= self.n_experts:
            self._refuse(f"node row {node_row}'s list names expert {ids.max()} of "
                         f"{self.n_experts}")
        return ids, self.h5["index_d"][node_row, start:stop]

    def rows(self, node_rows):
        """This segment's arrays on ``node_rows`` (read once per distinct tuple of rows)."""
        key = tuple(int(r) for r in node_rows)
        if key not in self._rows:
            order = np.argsort(key)     # h5py reads increasing indices
            rows = {}
            for name in ("dense", "sparse_values", "sparse_heads", "floor"):
                data = self.h5[name]
                part = data[np.asarray(key)[order]] if data.shape[1] else \
                    np.zeros((len(key), 0), data.dtype)
                rows[name] = part[np.argsort(order)]
            self._rows = {key: rows}    # one task at a time: bounded memory
        return self._rows[key]

    def problems(self, node_rows, local):
        """Per local expert, its decoded (n_heads, C) columns, each normalised to sum 1."""
        problems = [None] * len(local)
        for positions, stack in self.stacks(node_rows, local):
            for position, P in zip(positions, stack):
                problems[position] = P
        return problems

    def stacks(self, node_rows, local):
        """The experts ``local`` as (positions in ``local``, (m, n_heads, C) array) per group of
        experts stored alike (same head count, dense or not), decoded and normalised at once."""
        rows = self.rows(node_rows)
        local = np.asarray(local, dtype=np.int64)
        groups = {}
        for position, i in enumerate(local):
            groups.setdefault((self.n_heads[i], self.floor_column[i] < 0), []).append(position)
        for (n_heads, dense), positions in groups.items():
            members = local[positions]
            columns = self.column[members][:, None] + np.arange(self.width[members[0]])
            if dense:
                stack = rows["dense"][:, columns].astype(np.float64)     # (C, m, H)
            else:
                stack = np.repeat(rows["floor"][:, self.floor_column[members], None]
                                  .astype(np.float64), n_heads, axis=2)
                np.put_along_axis(stack, rows["sparse_heads"][:, columns].astype(np.int64),
                                  rows["sparse_values"][:, columns].astype(np.float64), axis=2)
            stack = np.ascontiguousarray(stack.transpose(1, 2, 0))           # (m, H, C)
            yield np.array(positions), stack / stack.sum(axis=1, keepdims=True)

    def close(self):
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(2**20):
            digest.update(chunk)
    return digest.hexdigest()


def _inside(root, relative):
    """``root / relative``, refused unless it is a relative path that resolves inside root."""
    root = Path(root)
    path = root / relative
    if Path(relative).is_absolute() or not os.path.realpath(path).startswith(
            os.path.realpath(root) + os.sep):
        raise ValueError(f"zoo segment {relative!r} is not inside {str(root)!r}")
    return path
