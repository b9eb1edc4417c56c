"""A label directory opened on any machine: labels, the SDAG's description and the hub file.

Labelling needs the images and runs every expert; choosing and running experts for a task needs
neither the images nor any expert that is not chosen. :func:`save_label_dir` writes into one
directory everything that the second step needs, and :func:`load_label_dir` opens it as a fitted
:class:`ModelLabeler` without images or weights::

    DIR/labels/        the label store (LabelStore: one record of node sums per expert)
    DIR/sdag.json      the SDAG without images (SemanticDAG.to_manifest): node ids, edges,
                       texts, each node's image count and data key
    DIR/hub.toml       the hub file, every expert's n_outputs and fingerprint declared
    DIR/models/        model files copied in (save_label_dir(..., bundle=True))
    DIR/patch-references/  a few images per node, for calibrating the patch without the SDAG

``ModelLabeler(sdag, cache_dir=DIR)`` keeps its records in ``DIR/labels`` already, so labelling
into ``DIR`` and saving it writes each record once.

The directory travels whole: a model file inside it is named relative to it, any other by its
absolute path (bundle them in to share the directory with another machine). It is data: reading
it imports no module unless the reader consents (``trust_code=True``). Its content has one
digest (:func:`label_dir_digest`).
"""

import hashlib
import json
import os
import re
import secrets
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..hub import ExpertCost, LazyExpert, ModelHub, expert_fingerprint, n_heads
from ..hub._hubfile import read_hub_file, write_hub_file
from ..semantic_graph import SemanticDAG
from ..utils import atomic_write_bytes
from ._labeler import ModelLabeler
from ._references import save_reference_images
from ._store import STORE_FOLDER, LabelStore

SDAG_MANIFEST = "sdag.json"
"""The SDAG without its images, in a label directory (written last)."""
HUB_FILE = "hub.toml"
"""The hub file of a label directory: every expert's specification and declarations."""
MODELS = "models"
_UNSAFE_IN_NAMES = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ExpertRecordStatus:
    """How completely a label directory holds one expert's labels for its SDAG.

    Attributes
    ----------
    expert : str
        The expert's name in the hub file.
    source : str or None
        Its specification's source (None for an expert that is not a specification).
    n_outputs : int or None
        Declared output size (None: undeclared).
    fingerprint : str or None
        Declared fingerprint (None: undeclared).
    key : str or None
        Its record's key in the label store.
    n_labelled : int
        SDAG nodes with images whose rows the record holds.
    missing_nodes : tuple of str
        SDAG nodes with images whose rows it lacks.
    size : int
        Bytes of its record on disk.
    status : {"ok", "incomplete", "missing", "undeclared"}
        "ok": a row for every node with images; "incomplete": some are missing; "missing": no
        usable record; "undeclared": the hub file does not declare ``n_outputs`` and
        ``fingerprint``, so the record cannot be found without building the model.
    cost : ExpertCost or None
        What the expert costs per image, as its record stores it (None: not recorded).
    unresolved : str or None
        Why its model could not be built here (a missing file, code without consent), when
        :func:`expert_statuses` was asked to ``resolve``; None otherwise.
    """

    expert: str
    source: str
    n_outputs: int
    fingerprint: str
    key: str
    n_labelled: int
    missing_nodes: tuple
    size: int
    status: str
    cost: ExpertCost = None
    unresolved: str = None


def save_label_dir(labeler, directory, *, bundle=False):
    """Write a fitted labeler's labels, SDAG manifest and hub file into ``directory``.

    The directory can then be copied anywhere and opened with :func:`load_label_dir`, which
    needs neither the SDAG's images nor any expert's weights. Records already in the directory
    are kept (a record gains the rows it lacks), and so are the experts of its hub file: the
    labeler's experts are added to them, and one with the name of an expert already there but
    another specification and fingerprint replaces it with a warning (the old one's labels
    stay, unused). The manifest is replaced by this labeler's.

    Parameters
    ----------
    labeler : ModelLabeler
        Fitted on a hub of :class:`~skmll.hub.LazyExpert` (a hub file's experts), each with a
        fingerprint, so that its labels can be stored and found again.
    directory : path
        The label directory; ``ModelLabeler(..., cache_dir=directory)`` has written its records
        there already, and any other labeler's are merged into it.
    bundle : bool, default=False
        Copy every model file an expert names from outside the directory into
        ``directory/models/<expert>/`` and name it there, so the directory is complete
        wherever it is copied. Without it, files outside are named by their absolute path.

    Returns
    -------
    directory : Path
        Each expert's record holds its cost per image (``labeler.costs_``), so the labeler
        :func:`load_label_dir` opens has the same ``costs_``.

    Raises
    ------
    TypeError
        When an expert is a model object rather than a specification (it cannot be written to
        a hub file).
    ValueError
        When an expert has no fingerprint (its labels have no key to be stored under).
    OSError
        When a record cannot be written.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from skmll import ModelHub, ModelLabeler, SemanticDAG
    >>> from skmll.hub import LazyExpert
    >>> from skmll.labelling import load_label_dir, save_label_dir
    >>> sdag = SemanticDAG(["thing", "dark", "light"],
    ...                    edges=[("thing", "dark"), ("thing", "light")],
    ...                    data={"dark": np.zeros((3, 32, 32), np.uint8),
    ...                          "light": np.full((3, 32, 32), 255, np.uint8)})
    >>> hub = ModelHub([LazyExpert("timm:test_resnet", num_classes=3, name="tiny")])
    >>> folder = tempfile.mkdtemp()
    >>> labeler = ModelLabeler(sdag, cache_dir=folder, verbose=0).fit(hub)
    >>> _ = save_label_dir(labeler, folder)
    >>> opened = load_label_dir(folder)          # no image, no weights
    >>> opened.sdag
    SemanticDAG(n_nodes=3, n_edges=2, n_nodes_with_images=2, n_images=6, images_held=False)
    >>> bool((opened.labels_["tiny"].scores == labeler.labels_["tiny"].scores).all())
    True
    >>> opened.hub_["tiny"].is_loaded
    False
    """
    labeler.checked_labels()   # raises unless fitted, and on labeler.sdag
    directory = Path(directory)
    sdag, hub = labeler.sdag, labeler.hub_
    not_specs = [expert.name for expert in hub if not isinstance(expert, LazyExpert)]
    if not_specs:
        raise TypeError(f"expert(s) {not_specs} are model objects, not specifications: a label "
                        "directory holds a hub file, so build the hub from one "
                        "(ModelHub.from_toml) or of LazyExpert objects")
    store = LabelStore(directory / STORE_FOLDER)
    with_images = [sdag.node_ids[n] for n in np.flatnonzero(sdag.n_images > 0)]
    for expert in hub:
        key = expert_fingerprint(expert)
        if key is None:
            raise ValueError(f"expert {expert.name!r} has no fingerprint, so its labels cannot "
                             "be stored; declare one in its specification")
        statistics = labeler.node_statistics_[expert.name]
        rows = {}
        for node in with_images:
            i = sdag.node_index[node]
            rows[sdag.node_data_hash(node)] = (statistics.logit_sums[i],
                                               statistics.probability_sums[i],
                                               int(statistics.counts[i]))
        if not store.merge(key, rows, expert=expert, cost=labeler.costs_.get(expert.name)):
            raise OSError(f"could not write the labels of expert {expert.name!r} into "
                          f"{store.records}")
    if bundle:
        hub = ModelHub([_bundled(expert, directory / MODELS) for expert in hub])
    write_hub_file(_merged_hub(directory / HUB_FILE, hub), directory / HUB_FILE)
    save_reference_images(sdag, directory)   # the patch calibrates on them without the SDAG
    # the manifest last: a directory with one has every record it describes
    atomic_write_bytes(directory / SDAG_MANIFEST,
                       json.dumps(sdag.to_manifest(), indent=1).encode("utf-8"))
    return directory


def _bundled(expert, models):
    """``expert`` naming copies, inside ``models``, of the files it names outside its parent."""
    directory = os.path.realpath(models.parent)
    outside = {key: path for key, path in expert.local_paths().items()
               if os.path.commonpath([os.path.realpath(path), directory]) != directory}
    if not outside:
        return expert
    copied = {key: _copy_in(Path(path), models / _folder_name(expert.name))
              for key, path in outside.items()}
    return expert.relocated(copied)


def _folder_name(name):
    """A folder name for the expert ``name``: itself when it is a plain name, else a plain
    version of it with a hash of it (so two experts never share a folder)."""
    plain = _UNSAFE_IN_NAMES.sub("_", name).strip("._")
    if plain == name:
        return name
    return f"{plain or 'expert'}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:8]}"


def _copy_in(source, folder):
    """Copy the file or folder ``source`` into ``folder`` (replacing one of its name) through
    a temporary name, so an interrupted copy never stands where a model is expected."""
    if not source.exists():
        raise FileNotFoundError(f"model file {str(source)!r} does not exist, so it cannot be "
                                "bundled")
    target = folder / source.name
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{source.name}.{secrets.token_hex(8)}.tmp"
    if source.is_dir():
        shutil.copytree(source, temporary)
        if target.exists():
            shutil.rmtree(target)
    else:
        shutil.copyfile(source, temporary)
    os.replace(temporary, target)
    return target


def _merged_hub(path, hub):
    """The hub file's experts at ``path`` (if any), those named in ``hub`` replaced by hub's."""
    if not path.is_file():
        return hub
    merged = ModelHub()
    for old in read_hub_file(path, trust_code=False):   # read only: nothing is imported
        if old.name not in hub.names:
            merged.add(old)
        elif old.spec != hub[old.name].spec \
                and old.declared("fingerprint") != hub[old.name].fingerprint:
            warnings.warn(f"expert {old.name!r} of {path} is replaced by another expert of that "
                          f"name ({old.source!r} by {hub[old.name].source!r}); the labels of "
                          "the one replaced stay in the directory, unused", UserWarning,
                          stacklevel=3)
    for expert in hub:
        merged.add(expert)
    return merged


def load_label_dir(directory, *, hub=None, delta=1.0, trust_code=False, verbose=0):
    """Open a label directory as a fitted :class:`ModelLabeler`: no image read, no model built.

    The labeler's ``sdag`` is the directory's manifest (:meth:`SemanticDAG.from_manifest`: node
    ids, edges, texts and data keys, no images), its ``hub_`` the hub file's
    :class:`~skmll.hub.LazyExpert` objects, and its ``labels_`` are mixed from the stored node
    sums with ``delta``. :class:`~skmll.MLLZeroShotClassifier` ``fit`` then selects experts
    from the labels alone, and ``predict`` builds only the selected ones.

    Parameters
    ----------
    directory : path
        Written by :func:`save_label_dir` (or ``skmll label``).
    hub : path, ModelHub or None, default=None
        The experts, when they are not the directory's own hub file: e.g. this machine's hub
        file, whose weights paths are local. Every expert must have labels in the directory
        (found by its declared fingerprint, whatever its name). A hub file given here is the
        caller's own: its experts may import code.
    delta : float, default=1.0
        Eq. 2 mixing weight (see :class:`ModelLabeler`); stored sums serve every delta.
    trust_code : bool, default=False
        Whether the directory's own hub file may import and run code when an expert is built
        (a ``torch:package.module:factory`` source, which may name any callable, or a module
        beside the hub file). Without it such an expert refuses to build (``predict``), naming
        itself and this argument; labels, selection and data-only sources (ONNX, safetensors
        or ``weights_only`` torch weights, timm, Hugging Face) work either way. Pass True only
        for a directory whose author you trust, as with transformers' ``trust_remote_code``.
    verbose : int, default=0

    Returns
    -------
    labeler : ModelLabeler
        Fitted, with ``cache_dir=directory``.

    Raises
    ------
    FileNotFoundError
        When ``directory`` is not a label directory (no such folder, no manifest or hub file).
    ValueError
        When an expert does not declare ``n_outputs`` and ``fingerprint``, or the directory
        lacks its labels for some node of the SDAG; the message names the expert and nodes.

    Examples
    --------
    >>> from skmll.labelling import load_label_dir
    >>> labeler = load_label_dir("labels/")   # doctest: +SKIP
    """
    directory = Path(directory)
    sdag = read_sdag_manifest(directory)
    hub = open_hub(directory, hub, trust_code=trust_code)
    statuses = expert_statuses(directory, sdag, hub)
    for status in statuses:
        _raise_unless_complete(directory, status)
    labeler = ModelLabeler(sdag, delta=delta, cache_dir=directory, verbose=verbose)
    return labeler.fit(hub)


def read_sdag_manifest(directory):
    """The SDAG (without images) that the label directory ``directory`` describes.

    Raises
    ------
    FileNotFoundError
        When ``directory`` or its manifest does not exist.
    ValueError
        When the manifest is unreadable or malformed.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"label directory {str(directory)!r} does not exist")
    path = directory / SDAG_MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{str(directory)!r} holds no {SDAG_MANIFEST}: it is not a label "
                                "directory written by skmll label (or save_label_dir)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is unreadable: {exc}") from None
    try:
        return SemanticDAG.from_manifest(manifest)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def open_hub(directory, hub=None, *, trust_code=False):
    """The hub: ``hub`` itself (a ModelHub), the hub file at ``hub`` (the caller's own, so its
    code may run), or the directory's own (whose code runs only when ``trust_code``)."""
    if isinstance(hub, ModelHub):
        return hub
    path = Path(directory) / HUB_FILE if hub is None else Path(hub)
    if not path.is_file():
        raise FileNotFoundError(f"hub file {str(path)!r} does not exist")
    return ModelHub(read_hub_file(path, trust_code=trust_code or hub is not None))


def expert_statuses(directory, sdag, hub, *, resolve=False):
    """What the label directory holds of each expert's labels on ``sdag``; builds no model.

    Parameters
    ----------
    directory : path
    sdag : SemanticDAG
        Usually :func:`read_sdag_manifest` of ``directory``.
    hub : ModelHub
    resolve : bool, default=False
        Also find whether each expert's model could be built here (its files exist, its code
        may run and is importable: :meth:`LazyExpert.unresolved`), still without building it.

    Returns
    -------
    list of ExpertRecordStatus
        In hub order.
    """
    store = LabelStore(Path(directory) / STORE_FOLDER)
    sizes = {info.key: info.size for info in store.scan()}
    needed = {sdag.node_data_hash(sdag.node_ids[n]): sdag.node_ids[n]
              for n in np.flatnonzero(sdag.n_images > 0)}
    return [_expert_status(store, sizes, needed, expert, resolve) for expert in hub]


def _expert_status(store, sizes, needed, expert, resolve):
    declared = getattr(expert, "declared", None)
    if declared is not None:   # a specification: only what it declares, never a build
        n_outputs, fingerprint = declared("n_outputs"), declared("fingerprint")
    else:
        n_outputs, fingerprint = expert.n_outputs, getattr(expert, "fingerprint", None)
    unresolved = expert.unresolved() if resolve and isinstance(expert, LazyExpert) else None
    described = dict(expert=expert.name, source=getattr(expert, "source", None),
                     n_outputs=n_outputs, fingerprint=fingerprint, unresolved=unresolved)
    if n_outputs is None or not isinstance(fingerprint, str):
        return ExpertRecordStatus(**described, key=None, n_labelled=0,
                                  missing_nodes=tuple(needed.values()), size=0,
                                  status="undeclared")
    key = expert_fingerprint(expert)
    rows = store.load(key, n_heads=n_heads(expert))
    missing = tuple(node for data_key, node in needed.items() if data_key not in rows)
    status = "incomplete" if missing and rows else "missing" if missing else "ok"
    return ExpertRecordStatus(**described, key=key, n_labelled=len(needed) - len(missing),
                              missing_nodes=missing, size=sizes.get(key, 0), status=status,
                              cost=store.cost(key))


def _raise_unless_complete(directory, status):
    where = f"label directory {str(directory)!r}"
    if status.status == "undeclared":
        raise ValueError(f"expert {status.expert!r} does not declare n_outputs and fingerprint, "
                         f"so its labels in the {where} cannot be found without building it: "
                         "declare them in its hub file with 'skmll hub declare HUB.toml' "
                         "(Python: hub.to_toml(path, declare_missing=True))")
    if status.status == "missing":
        raise ValueError(f"the {where} holds no labels of expert {status.expert!r} "
                         f"(fingerprint {status.fingerprint!r}): label it into this directory "
                         "(skmll label)")
    if status.status == "incomplete":
        missing = status.missing_nodes
        raise ValueError(f"the {where} lacks the labels of expert {status.expert!r} for "
                         f"{len(missing)} of the SDAG's {status.n_labelled + len(missing)} nodes "
                         f"with images ({', '.join(map(repr, missing[:5]))}"
                         f"{', ...' if len(missing) > 5 else ''}): label them into this "
                         "directory (skmll label)")
