"""A label directory's labels stored for search, in its own ``zoo/`` folder, grown in place.

The label directory stays what it was (``labels/``, ``sdag.json``, ``hub.toml``); the zoo is
one more folder in it, so it travels with the directory, is covered by its digest and is
opened, like the rest, without building any expert or running any code.
"""

from pathlib import Path

import numpy as np

from ._rows import stored_probabilities
from ._store import MANIFEST, ZooStore

ZOO_FOLDER = "zoo"
"""The zoo of a label directory: ``<label dir>/zoo``."""
_SEGMENT_SIZE = 4096
# Node rows compared to tell whether an expert in the zoo still has the label it had.
_PROBE_NODES = 16


def update_zoo(label_dir, *, segment_size=_SEGMENT_SIZE, max_dense=None, verbose=0):
    """Store the label directory's labels for search in ``<label_dir>/zoo``; add what it lacks.

    The first run creates the zoo over the SDAG's nodes that carry a label (those with images
    at or below them, the nodes classes can be matched to); every run appends, as new segments,
    the experts of the directory's hub file that the zoo does not hold yet. Nothing stored is
    rewritten: a second run adds nothing, and readers of the zoo keep working meanwhile. The
    labels are read from the directory alone (:func:`~skmll.labelling.load_label_dir`: no
    image, no expert built, no code run), mixed with the default ``delta=1.0``.

    Parameters
    ----------
    label_dir : path
        A label directory written by ``skmll label`` or
        :func:`~skmll.labelling.save_label_dir`.
    segment_size : int, default=4096
        Most experts per segment (one segment file per this many new experts).
    max_dense : int or None, default=None
        When the zoo is created: keep every head of every expert (None), or only the
        ``max_dense`` largest entries per node of wider experts (less disk; selections then
        differ from full precision's, see :meth:`ZooStore.create`). An existing zoo keeps the
        choice it was created with.
    verbose : int, default=0
        Progress bars.

    Returns
    -------
    zoo : ZooStore
        The zoo, opened.
    added : list of str
        The experts added by this run, in hub order.

    Raises
    ------
    ValueError
        When the zoo was built on another SDAG, or holds an expert of the hub file's name whose
        stored label differs from the directory's (another model under that name): the zoo
        never replaces an expert.

    Examples
    --------
    A label directory of one expert on an SDAG of two image nodes under a third:

    >>> import tempfile
    >>> import numpy as np
    >>> from skmll import ModelHub, ModelLabeler, SemanticDAG
    >>> from skmll.hub import LazyExpert
    >>> from skmll.labelling import save_label_dir
    >>> sdag = SemanticDAG(["thing", "dark", "light"],
    ...                    edges=[("thing", "dark"), ("thing", "light")],
    ...                    data={"dark": np.zeros((3, 32, 32), np.uint8),
    ...                          "light": np.full((3, 32, 32), 255, np.uint8)})
    >>> hub = ModelHub([LazyExpert("timm:test_resnet", num_classes=3, name="tiny")])
    >>> folder = tempfile.mkdtemp()
    >>> _ = save_label_dir(ModelLabeler(sdag, cache_dir=folder, verbose=0).fit(hub), folder)
    >>> zoo, added = update_zoo(folder)
    >>> added, zoo.node_ids, len(zoo.segments)
    (['tiny'], ['thing', 'dark', 'light'], 1)
    >>> update_zoo(folder)[1]          # nothing new: nothing written
    []
    """
    if int(segment_size) < 1:
        raise ValueError(f"segment_size must be a positive integer, got {segment_size}")
    # imported here: searching a zoo (``import skmll.zoo``) needs neither torch nor the hub
    from ..labelling import load_label_dir

    label_dir = Path(label_dir)
    labeler = load_label_dir(label_dir, verbose=verbose)
    sdag, labels = labeler.sdag, labeler.labels_
    node_rows = np.flatnonzero(sdag.has_data_below)
    provenance = {"sdag_key": labeler.sdag_key_, "delta": float(labeler.delta_),
                  "statistic": "probability"}
    zoo = _open_or_create(label_dir / ZOO_FOLDER, [sdag.node_ids[n] for n in node_rows],
                          provenance, max_dense)
    stored = set(zoo.names)
    _refuse_changed_experts(zoo, {name: labels[name] for name in labels if name in stored},
                            node_rows)
    added = [name for name in labels if name not in stored]
    for start in range(0, len(added), int(segment_size)):
        chunk = added[start:start + int(segment_size)]
        zoo.append([(name, labels[name].probabilities[node_rows], _label_key(labels[name]))
                    for name in chunk], verbose=verbose)
    return zoo, added


def _label_key(label):
    """What identifies an expert's label across runs: its fingerprint ("" when it has none)."""
    return label.expert_fingerprint or ""


def _open_or_create(root, node_ids, provenance, max_dense):
    """The zoo at ``root``, created over ``node_ids`` if there is none; refused if it covers
    other nodes or was mixed from another SDAG's images or with another delta."""
    if not (root / MANIFEST).is_file():
        return ZooStore.create(root, node_ids, max_dense=max_dense, provenance=provenance)
    zoo = ZooStore(root)
    differs = {field: (zoo.manifest["provenance"].get(field), value)
               for field, value in provenance.items()
               if zoo.manifest["provenance"].get(field) not in (None, value)}
    if differs:
        listed = ", ".join(f"{field}: {there!r} there, {here!r} here"
                           for field, (there, here) in differs.items())
        raise ValueError(f"the zoo {str(root)!r} was built from other labels than the label "
                         f"directory's ({listed}): delete the folder and convert again")
    if zoo.node_ids != node_ids:
        raise ValueError(f"the zoo {str(root)!r} was built on another SDAG ({len(zoo.node_ids)} "
                         f"labelled nodes, the label directory's SDAG has {len(node_ids)}"
                         f"{'' if len(node_ids) != len(zoo.node_ids) else ' other ones'}): "
                         "delete the folder and convert the directory again")
    return zoo


def _refuse_changed_experts(zoo, labels, node_rows):
    """Raise when an expert in the zoo has another label in the directory now.

    Its key (the expert's fingerprint, which covers its weights and preprocessing) must be the
    one stored; and the stored rows of a few nodes spread over the SDAG are compared with what
    the directory's label of that name would store, so that an expert without a fingerprint
    is checked too.
    """
    if not labels:
        return
    stored_keys = dict(zip(zoo.names, zoo.keys))
    for name, label in labels.items():
        if stored_keys[name] and stored_keys[name] != _label_key(label):
            raise ValueError(
                f"the zoo {str(zoo.root)!r} holds an expert {name!r} with fingerprint "
                f"{stored_keys[name]!r}; the label directory's has {_label_key(label)!r}: "
                "another model under that name? A zoo never replaces an expert: give the new "
                "one another name, or delete the zoo folder and convert again")
    probe = np.unique(np.linspace(0, len(zoo.node_ids) - 1, _PROBE_NODES).round().astype(int))
    index = {name: i for i, name in enumerate(zoo.names)}
    stored = zoo.problems(probe, [index[name] for name in labels])
    max_dense = zoo.manifest["max_dense_heads"]
    for (name, label), columns in zip(labels.items(), stored):
        expected = stored_probabilities(label.probabilities[node_rows[probe]], max_dense).T
        expected = expected / expected.sum(axis=0)
        # float16 rounding of a label recomputed elsewhere may differ by one unit in the last
        # place; another model's rows differ by far more.
        if columns.shape != expected.shape or not np.allclose(columns, expected, rtol=2**-9,
                                                              atol=1e-6):
            raise ValueError(
                f"the zoo {str(zoo.root)!r} holds an expert {name!r} whose label differs from "
                f"the label directory's ({columns.shape[0]} heads stored, {expected.shape[0]} "
                "now): another model under that name? A zoo never replaces an expert: give the "
                "new one another name, or delete the zoo folder and convert again")
