"""Experts given by their specification: built from their source when first run, then released.

A hub of thousands of models is mostly never run for a given task: labels are read from the
label store and only the selected experts predict. A :class:`LazyExpert` holds what
:func:`create_expert` needs (source and keyword arguments) plus what must be known without the
weights (``name``, ``n_outputs``, ``fingerprint``, optionally ``head_names``); the model is built
on first use and can be released.
"""

import contextlib
import importlib.util
import inspect
import os
import sys
import threading
from pathlib import Path

import numpy as np

from ._base import (
    ExpertError,
    check_device,
    create_expert,
    find_adapter,
    split_source,
)
from ._heads import check_head_names

# What a specification may declare so it is known without loading (never passed to adapters).
DECLARATIONS = ("n_outputs", "fingerprint", "head_names")
_RESERVED = {"name", "base_dir", *DECLARATIONS}

# sys.path is shared by every thread: one build at a time extends it with a hub file's folder.
_IMPORT_PATH_LOCK = threading.Lock()


class LazyExpert:
    """An expert given by its specification; the model is built on first use.

    ``LazyExpert(source, **kwargs)`` stands for ``create_expert(source, **kwargs)`` (see
    :func:`create_expert` for the sources) without building it: the model is built by the first
    ``logits()`` call (or :meth:`load`) and dropped by :meth:`release`. It pickles as its
    specification, never as the model, so sending it to a worker sends a few hundred bytes and
    the worker builds its own copy. Local paths are made absolute at construction; workers on
    other machines need them at the same place (a shared file system).

    Declare ``n_outputs`` and ``fingerprint`` to label, select and list experts with no weights
    in memory: :class:`ModelLabeler` keys stored labels by the fingerprint and reads them for
    every node already labelled, and :class:`MLLZeroShotClassifier` ``fit`` reads labels only,
    so only ``predict`` builds models (the selected ones). An undeclared value is found by
    building the model once (then released) the first time it is asked for; a hub file written
    afterwards (:meth:`ModelHub.to_toml`) declares it.

    Parameters
    ----------
    source : str
        ``"<prefix>:<spec>"`` as :func:`create_expert` takes it, e.g. ``"timm:resnet18.a1_in1k"``,
        ``"hf:org/name"``, ``"onnx:models/m.onnx"``, ``"keras:m.keras"`` or
        ``"torch:package.module:factory"`` (with ``weights=``).
    name : str or None
        Unique name in the hub; defaults to the stem of the model's file (or folder) when it has
        one, else the spec. Passed to the adapter.
    n_outputs : int or None
        The model's output size, declared.
    fingerprint : str or None
        The fingerprint the built adapter reports (a hash of its weights and preprocessing, e.g.
        ``TorchExpert.fingerprint``), declared: the key of the expert's stored labels. Record it
        from a built expert (``hub.to_toml(path, declare_missing=True)`` does); any other value
        is refused when the model is built. It is required for labels to be reused without
        building the model: an undeclared fingerprint builds the model once per process to be
        computed.
    head_names : list of str or None
        What each output means, for explanations only (:func:`describe_head`); when None, the
        names the built adapter finds (Hugging Face ``id2label``, timm ImageNet classes), once
        it has been built.
    base_dir : path-like or None
        The folder relative paths are resolved against; the current directory when None. A hub
        file passes its own folder.

    **kwargs
        The adapter's keyword arguments (those its ``from_source`` and constructor take; an
        unknown one raises here, not when the model is first built).

    Raises
    ------
    ValueError, TypeError
        At construction, for an unknown or empty source, an unknown argument or a malformed
        declaration. :class:`ExpertError` when the model is built, if it cannot be built or
        disagrees with what is declared (``n_outputs``, ``fingerprint``, ``head_names``' count).

    Notes
    -----
    A source that imports code (``"torch:package.module:factory"``, which may name anything
    importable, ``torch.hub.load`` included) runs that code when the model is built. A hub file
    read from a label directory someone handed over (:func:`~skmll.labelling.load_label_dir`)
    refuses to build such an expert unless its reader consented (``trust_code=True``, the
    command line's ``--trust-code DIR``), as transformers' ``trust_remote_code`` does; sources
    that load data only (ONNX, safetensors or ``weights_only`` torch weights, timm, Hugging Face
    without remote code) need no consent. With consent, and for a hub file of one's own, a
    module beside the hub file is importable when no installed module has its name.

    Examples
    --------
    >>> import numpy as np
    >>> expert = LazyExpert("timm:test_resnet", num_classes=4, name="tiny", n_outputs=4)
    >>> expert.n_outputs, expert.is_loaded
    (4, False)
    >>> expert.logits(np.zeros((2, 32, 32, 3), dtype=np.float32)).shape
    (2, 4)
    >>> expert.is_loaded
    True
    >>> expert.release()
    >>> expert.is_loaded
    False
    """

    loads_on_demand = True
    _device = None   # where to build and run the model, when moved by to(); None: as specified

    def __init__(self, source, *, name=None, n_outputs=None, fingerprint=None, head_names=None,
                 base_dir=None, **kwargs):
        prefix, model_id = split_source(source)
        _check_keywords(prefix, kwargs)
        base = Path.cwd() if base_dir is None else Path(base_dir)
        self._paths = set()   # "source" and the keyword arguments that hold local paths
        adapter = find_adapter(prefix)
        if _declared(adapter, "source_is_local_path", model_id, base):
            model_id = _absolute(model_id, base)
            self._paths.add("source")
        for key in getattr(adapter, "path_keywords", ()):
            if kwargs.get(key) is not None:
                kwargs[key] = _absolute(kwargs[key], base)
                self._paths.add(key)
        self.source = f"{prefix}:{model_id}"
        self.kwargs = kwargs
        self.name = _default_name(model_id, kwargs, self._paths) if name is None else name
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"name must be a non-empty str; got {self.name!r}")
        self._declared = _checked_declarations(self.name, n_outputs, fingerprint, head_names)
        self._found = {}      # values learnt by building the model
        self._code_folder = None    # where its code may also be imported from (a hub file's)
        self._refused_by = None     # the untrusted hub file that named it, if any
        self._start_runtime()

    def _start_runtime(self):
        self._model = None
        self._lock = threading.Lock()
        self._borrowers = 0
        self._release_after_borrow = False

    # -- what is known without the model ---------------------------------------------------

    def declared(self, key):
        """The value the specification declares for ``key`` (one of ``DECLARATIONS``), or None."""
        return self._declared[key]

    @property
    def n_outputs(self):
        """Output size: declared, or found by building the model once."""
        return self._known("n_outputs")

    @property
    def fingerprint(self):
        """Key of the stored labels: declared, or found by building the model once."""
        return self._known("fingerprint")

    @property
    def head_names(self):
        """Declared names, else those the built model reported; never builds the model."""
        declared = self._declared["head_names"]
        return declared if declared is not None else self._found.get("head_names")

    @property
    def imports_code(self):
        """Whether building the model imports and runs code its specification names."""
        prefix, _, model_id = self.source.partition(":")
        return _declared(find_adapter(prefix), "source_imports_code", model_id)

    def local_paths(self):
        """``{argument: absolute path}`` of the local files it names ("source" for its id)."""
        model_id = self.source.partition(":")[2]
        return {key: model_id if key == "source" else self.kwargs[key]
                for key in sorted(self._paths)}

    def relocated(self, paths):
        """The same specification with the local files of ``paths`` (as :meth:`local_paths`)
        moved; a new, unbuilt expert with the same consent."""
        table = self.spec
        prefix = self.source.partition(":")[0]
        for key, path in paths.items():
            if key == "source":
                table["source"] = f"{prefix}:{os.fspath(path)}"
            else:
                table[key] = os.fspath(path)
        moved = LazyExpert(table.pop("source"), **table)
        moved._code_folder, moved._refused_by = self._code_folder, self._refused_by
        return moved

    def unresolved(self):
        """Why the model could not be built here, found without building it; None if nothing.

        Checks that every local file it names exists, and for a source that imports code,
        that consent was given and its top-level module is installed or beside its hub file.
        Models fetched from elsewhere (timm's or Hugging Face's hubs) are not checked.
        """
        if self.imports_code:
            if self._refused_by is not None:
                return self._refusal()
            missing = self._missing_module()
            if missing is not None:
                return missing
        missing = [f"{key}={path!r}" for key, path in self.local_paths().items()
                   if not os.path.exists(path)]
        return f"missing file(s): {', '.join(missing)}" if missing else None

    def _missing_module(self):
        """Why the top-level module of a code source cannot be found, or None if it can."""
        top = self.source.partition(":")[2].partition(":")[0].split(".")[0]
        folder = self._code_folder
        if folder is not None and (os.path.isfile(os.path.join(folder, f"{top}.py"))
                                   or os.path.isdir(os.path.join(folder, top))):
            return None
        if importlib.util.find_spec(top) is not None:
            return None
        beside = "" if folder is None else \
            f" nor beside its hub file ({os.path.join(folder, top + '.py')})"
        return (f"module {top!r} of its source {self.source!r} is not installed{beside}: "
                "install it, or put it on PYTHONPATH")

    def _refusal(self):
        folder = os.path.dirname(self._refused_by)
        return (f"its source {self.source!r} imports and runs code, and the hub file "
                f"{self._refused_by!r} that names it came with a label directory: build it "
                f"only if you trust whoever wrote that file, by passing --trust-code {folder} "
                "(Python: load_label_dir(..., trust_code=True))")

    def _known(self, key):
        if self._declared[key] is not None:
            return self._declared[key]
        if key not in self._found:
            with self._borrowed():
                self.load()   # records what the model says (_check_agrees)
        return self._found[key]

    @property
    def spec(self):
        """The specification as one hub-file table (absolute paths), with every known value."""
        return self._table(folder=None)

    def _table(self, folder):
        """Name, source, declarations and arguments; paths relative to ``folder`` if given."""
        def written(key, value):
            # a file inside the hub file's folder travels with it; any other stays absolute
            inside = folder and key in self._paths and _is_inside(value, folder)
            return os.path.relpath(value, folder) if inside else value

        prefix, _, model_id = self.source.partition(":")
        table = {"name": self.name, "source": f"{prefix}:{written('source', model_id)}"}
        for key in DECLARATIONS:
            value = self._declared[key] if self._declared[key] is not None else self._found.get(key)
            if value is not None:
                table[key] = value
        table.update({key: written(key, value) for key, value in self.kwargs.items()})
        # a long list of head names reads best last
        table["head_names"] = table.pop("head_names", None)
        return {key: value for key, value in table.items() if value is not None}

    # -- the model ---------------------------------------------------------------------------

    @property
    def is_loaded(self):
        """Whether the model is built and held."""
        return self._model is not None

    def load(self):
        """Build the model unless it is built; returns the built expert.

        Raises
        ------
        ExpertError
            When the model cannot be built, or disagrees with the declarations.
        """
        with self._lock:
            if self._model is None:
                self._model = self._build()
            return self._model

    def release(self):
        """Drop the built model (a later ``logits()`` builds it again)."""
        with self._lock:
            self._model = None

    def logits(self, images):
        """The built model's logits (built now if needed); see :class:`Expert`."""
        return self.load().logits(images)

    def to(self, device):
        """Run on ``device`` from now on: a built model is moved, later builds are made there.

        The device is a runtime choice, not part of the specification: a hub file written
        afterwards does not record it (write ``device = "cuda"`` in the table for that), and
        pickled copies sent to workers build their models on it. Returns the expert.

        Raises
        ------
        TypeError
            When the source's adapter takes no ``device``.
        ValueError
            When the adapter refuses ``device`` (unknown, or not available here).
        """
        adapter = find_adapter(self.source.partition(":")[0])
        accepted = adapter_keywords(adapter)
        if accepted is not None and "device" not in accepted:
            raise TypeError(f"expert {self.name!r}: the adapter of {self.source!r} takes no "
                            "device=, so it cannot be moved")
        device = getattr(adapter, "_check_device", check_device)(device)
        with self._lock:
            self._device = device
            if self._model is not None:
                self._model.to(device)
        return self

    def _build(self):
        if self.imports_code and self._refused_by is not None:
            raise ExpertError(self.name, f"was not built: {self._refusal()}")
        kwargs = self.kwargs if self._device is None else {**self.kwargs, "device": self._device}
        try:
            with _importable_from(self._code_folder if self.imports_code else None):
                model = create_expert(self.source, name=self.name, **kwargs)
        except Exception as exc:  # any failure of the adapter or the user's factory
            missing = self._missing_module() if isinstance(exc, ImportError) \
                and self.imports_code else None
            hint = "" if missing is None else f" ({missing})"
            raise ExpertError(self.name, f"could not be built from {self.source!r}: "
                              f"{type(exc).__name__}: {exc}{hint}") from exc
        self._check_agrees(model)
        return model

    def _check_agrees(self, model):
        """Raise ExpertError where the built model contradicts the specification."""
        def disagree(what):
            return ExpertError(self.name, f"the model built from {self.source!r} {what}")

        if model.name != self.name:
            raise disagree(f"is named {model.name!r}")
        n_outputs = int(model.n_outputs)
        declared = self._declared
        if declared["n_outputs"] not in (None, n_outputs):
            raise disagree(f"has {n_outputs} outputs; the specification declares "
                           f"n_outputs={declared['n_outputs']}")
        if declared["head_names"] is not None and len(declared["head_names"]) != n_outputs:
            raise disagree(f"has {n_outputs} outputs; the specification declares "
                           f"{len(declared['head_names'])} head names")
        # hashing the weights once per process when undeclared, at every build when declared
        if declared["fingerprint"] is not None or "fingerprint" not in self._found:
            actual = _own_fingerprint(model)
            # an adapter without fingerprints leaves a declared one as the user's statement
            if declared["fingerprint"] not in (None, actual) and actual is not None:
                raise disagree(f"has fingerprint {actual!r}; the specification declares "
                               f"{declared['fingerprint']!r}: its weights or preprocessing "
                               "changed since the fingerprint was recorded, so labels stored "
                               "under it belong to another model. Record the new one (and "
                               "relabel).")
            self._found["fingerprint"] = actual
        self._found["n_outputs"] = n_outputs
        self._found["head_names"] = getattr(model, "head_names", None)

    @contextlib.contextmanager
    def _borrowed(self):
        """Within the block the model may be built; it is released at the end of the last
        overlapping block unless it was built before the first one began."""
        with self._lock:
            if self._borrowers == 0:
                self._release_after_borrow = self._model is None
            self._borrowers += 1
        try:
            yield self
        finally:
            with self._lock:
                self._borrowers -= 1
                if self._borrowers == 0 and self._release_after_borrow:
                    self._model = None

    # -- pickling: the specification, never the model -------------------------------------

    def __getstate__(self):
        runtime = ("_model", "_lock", "_borrowers", "_release_after_borrow")
        return {key: value for key, value in self.__dict__.items() if key not in runtime}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._start_runtime()

    def __repr__(self):
        loaded = ", loaded" if self.is_loaded else ""
        return f"LazyExpert({self.source!r}, name={self.name!r}{loaded})"


@contextlib.contextmanager
def _importable_from(folder):
    """Within the block, modules that are not installed are also looked for in ``folder``
    (None: nowhere else); no bytecode is written there, so reading a folder never changes it."""
    if folder is None:
        yield
        return
    with _IMPORT_PATH_LOCK:
        writes_bytecode = sys.dont_write_bytecode
        added = folder not in sys.path
        if added:
            sys.path.append(folder)   # last: an installed module of the same name wins
        sys.dont_write_bytecode = True
        try:
            yield
        finally:
            sys.dont_write_bytecode = writes_bytecode
            if added:
                sys.path.remove(folder)


def _is_inside(path, folder):
    path, folder = os.path.abspath(path), os.path.abspath(folder)
    return os.path.commonpath([path, folder]) == folder


def _own_fingerprint(model):
    declared = getattr(model, "fingerprint", None)
    return declared if isinstance(declared, str) else None


def _checked_declarations(name, n_outputs, fingerprint, head_names):
    if n_outputs is not None:
        if isinstance(n_outputs, bool) or not isinstance(n_outputs, (int, np.integer)) \
                or n_outputs < 1:
            raise TypeError(f"expert {name!r}: n_outputs must be an int >= 1; got {n_outputs!r}")
        n_outputs = int(n_outputs)
    if fingerprint is not None and (not isinstance(fingerprint, str) or not fingerprint):
        raise TypeError(f"expert {name!r}: fingerprint must be a non-empty str; "
                        f"got {fingerprint!r}")
    return {"n_outputs": n_outputs, "fingerprint": fingerprint,
            "head_names": check_head_names(head_names, n_outputs, name)}


def adapter_keywords(adapter):
    """Keyword arguments an adapter's ``from_source`` takes (with those it passes on to the
    constructor); None when it takes any keyword."""
    names = set()
    keyword_kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    # from_source(spec, ...) is bound; the constructor (self, spec or module, ...) is not
    for function, n_positional in ((adapter.from_source, 1), (adapter.__init__, 2)):
        parameters = list(inspect.signature(function).parameters.values())[n_positional:]
        names |= {p.name for p in parameters if p.kind in keyword_kinds}
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            return names
    return None


def _check_keywords(prefix, kwargs):
    accepted = adapter_keywords(find_adapter(prefix))
    if accepted is None:
        return
    if "name" not in accepted:
        raise TypeError(f"the adapter of source {prefix + ':'!r} takes no name=, which a "
                        "LazyExpert passes to it")
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise TypeError(f"unknown argument(s) {unknown} for source {prefix + ':'!r}; it takes "
                        f"{sorted(accepted - _RESERVED)} (and the declarations "
                        f"{sorted(_RESERVED - {'base_dir'})})")


def _declared(adapter, question, *args):
    """An adapter's answer to a hub file's question about its source (False when it has no
    answer: an adapter from another package that declares nothing)."""
    answer = getattr(adapter, question, None)
    return bool(answer(*args)) if callable(answer) else False


def _absolute(path, base):
    # not resolve(): a symlinked file (a model cache) keeps the name it was given
    return os.path.abspath(os.path.join(base, os.path.expanduser(os.fspath(path))))


def _default_name(model_id, kwargs, paths):
    for key in ("source", *sorted(paths - {"source"})):
        if key in paths:
            path = Path(model_id if key == "source" else kwargs[key])
            return path.name if path.is_dir() else path.stem
    return model_id
