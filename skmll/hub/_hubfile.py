"""Hub files: a hub written as TOML, one ``[[expert]]`` table per expert specification.

A table is one :class:`LazyExpert`: ``source`` and the adapter's keyword arguments (one
:func:`create_expert` call), plus what is known without loading (``name``, ``n_outputs``,
``fingerprint``, ``head_names``)::

    [[expert]]
    name = "digits-low"
    source = "torch:mypackage.nets:small_cnn"
    weights = "weights/digits-low.safetensors"   # relative to this file's folder
    input_size = [28, 28]
    n_outputs = 5
    fingerprint = "8f0c..."

Files are read with the standard library's ``tomllib`` (``tomli`` before Python 3.11) and
written by this module (the few value types a specification holds), atomically. A local path
inside the file's folder is written relative to it (it travels with the folder); any other
stays absolute.

Reading a hub file imports nothing. One's own hub file is trusted: an expert whose source
imports code (``torch:package.module:factory``) may import it from the file's folder too. A hub
file read with ``trust_code=False`` (a label directory's, unless its reader consented) yields
experts that refuse to build from such a source, naming the file and the consent to give.
"""

import json
import math
import os
import re
from pathlib import Path

import numpy as np

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from ..utils import atomic_write_bytes
from ._base import using_expert
from ._spec import LazyExpert

_TABLES = "expert"
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# arrays longer than this are written one item a line (head names)
_INLINE_ITEMS = 8


def read_hub_file(path, *, trust_code=True):
    """The experts a hub file describes, as :class:`LazyExpert` objects in its order (nothing
    is loaded); their names are unique.

    Parameters
    ----------
    path : path-like
    trust_code : bool, default=True
        False: experts whose source imports code refuse to be built (see
        :meth:`LazyExpert.unresolved`); True: they build, importing from the file's folder
        too.
    """
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from exc
    unknown = sorted(set(document) - {_TABLES})
    if unknown:
        raise ValueError(f"{path}: unknown top-level key(s) {unknown}; a hub file holds "
                         "[[expert]] tables only")
    tables = document.get(_TABLES, [])
    if not isinstance(tables, list):
        raise ValueError(f"{path}: 'expert' must be an array of tables, written [[expert]]")
    experts = {}
    folder = path.resolve().parent
    untrusted_file = None if trust_code else path
    for number, table in enumerate(tables, start=1):
        name = table.get("name")
        where = f"{path}, [[expert]] table {number}" + (f" ({name!r})" if name else "")
        try:
            expert = _expert_from_table(table, folder, untrusted_file=untrusted_file)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from exc
        if expert.name in experts:
            raise ValueError(f"{where}: duplicate expert name {expert.name!r}: names in a hub "
                             "must be unique")
        experts[expert.name] = expert
    return list(experts.values())


def _expert_from_table(table, folder, *, untrusted_file):
    """The table's expert; ``untrusted_file`` None: its code may be imported (from ``folder``
    too), else the hub file whose code it refuses to import."""
    table = dict(table)
    if "source" not in table:
        raise ValueError("no 'source' key (e.g. source = \"onnx:model.onnx\")")
    if "base_dir" in table:
        raise ValueError("unknown key 'base_dir': paths are relative to the hub file's folder")
    expert = LazyExpert(table.pop("source"), base_dir=folder, **table)
    if untrusted_file is None:
        expert._code_folder = str(folder)
    else:
        expert._refused_by = str(Path(untrusted_file).resolve())
    return expert


def write_hub_file(hub, path, *, declare_missing=False):
    """Write ``hub`` (all :class:`LazyExpert`) as a hub file; see :meth:`ModelHub.to_toml`."""
    path = Path(path)
    not_specs = [expert.name for expert in hub if not isinstance(expert, LazyExpert)]
    if not_specs:
        raise TypeError(f"expert(s) {not_specs} are model objects, not specifications: only a "
                        "LazyExpert (source + arguments) can be written to a hub file")
    if declare_missing:
        for expert in hub:
            with using_expert(expert):   # reading both builds the model at most once
                _ = (expert.n_outputs, expert.fingerprint)
    folder = path.resolve().parent
    lines = ["# skmll hub file: one [[expert]] table per expert (see skmll.hub.LazyExpert)."]
    for expert in hub:
        lines += ["", "[[expert]]"]
        for key, value in expert._table(folder).items():
            try:
                lines.append(f"{_key(key)} = {_value(value)}")
            except TypeError as exc:
                raise TypeError(f"expert {expert.name!r}, argument {key!r}: {exc}; a hub file "
                                "holds strings, numbers, booleans, arrays and tables (name a "
                                "torch module factory as source = "
                                "'torch:package.module:factory')") from exc
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))


def _key(key):
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _string(text):
    # JSON's escapes (\" \\ \n \t \uXXXX ...) are TOML's; TOML also wants DEL escaped
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(value):
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (str, os.PathLike)):
        return _string(os.fspath(value))
    if isinstance(value, (list, tuple)):
        items = [_value(item) for item in value]
        if len(items) <= _INLINE_ITEMS:
            return f"[{', '.join(items)}]"
        return "[\n" + "".join(f"    {item},\n" for item in items) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(str(k))} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"{type(value).__name__} cannot be written as TOML")
