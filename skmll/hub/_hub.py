"""``ModelHub``: the experts of a hub, in order, by unique name; read from and written to hub
files."""

from collections.abc import Sequence

from ._base import validate_expert
from ._hubfile import read_hub_file, write_hub_file


class ModelHub(Sequence):
    """An ordered collection of experts with unique names.

    Parameters
    ----------
    experts : iterable of Expert
        Objects with ``name``, ``n_outputs`` and ``logits(images)``.

    Examples
    --------
    >>> import numpy as np
    >>> class Mean:
    ...     name, n_outputs = "mean", 2
    ...     def logits(self, images):
    ...         m = images.mean(axis=(1, 2, 3))
    ...         return np.stack([m, 1 - m], axis=1)
    >>> hub = ModelHub([Mean()])
    >>> len(hub), hub.names
    (1, ['mean'])
    """

    def __init__(self, experts=()):
        self._experts = []
        for expert in experts:
            self.add(expert)

    def add(self, expert):
        """Append an expert; its name must be new to the hub. Returns the hub."""
        validate_expert(expert, len(self._experts))
        if expert.name in self.names:
            raise ValueError(f"duplicate expert name {expert.name!r}: names in a hub must be unique")
        self._experts.append(expert)
        return self

    def subset(self, names):
        """A new hub holding the named experts, in the given order."""
        return ModelHub([self[name] for name in names])

    @property
    def names(self):
        return [e.name for e in self._experts]

    def __len__(self):
        return len(self._experts)

    def __getitem__(self, key):
        if isinstance(key, str):
            for expert in self._experts:
                if expert.name == key:
                    return expert
            raise KeyError(f"no expert named {key!r} in the hub; it has {self.names}")
        return self._experts[key]

    @classmethod
    def from_toml(cls, path):
        """A hub of :class:`LazyExpert` read from a hub file; no model is loaded.

        The file holds one ``[[expert]]`` table per expert: ``source`` (``"<prefix>:<spec>"``),
        optionally ``name``, ``n_outputs``, ``fingerprint`` and ``head_names`` (declared, so they
        are known without loading), and the adapter's keyword arguments. Relative paths are
        resolved against the file's folder. See :class:`LazyExpert` for what each key means.

        Raises
        ------
        ValueError
            When the file is not valid TOML, or a table has an unknown key, no source, an
            unknown or empty source, a bad declaration or a name already taken; the message
            names the file, the table and the key.

        Examples
        --------
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "hub.toml")
        >>> with open(path, "w") as f:
        ...     _ = f.write('''
        ... [[expert]]
        ... name = "tiny"
        ... source = "timm:test_resnet"
        ... num_classes = 4
        ... n_outputs = 4
        ... ''')
        >>> hub = ModelHub.from_toml(path)
        >>> hub.names, hub["tiny"].n_outputs, hub["tiny"].is_loaded
        (['tiny'], 4, False)
        """
        return cls(read_hub_file(path))

    def to_toml(self, path, *, declare_missing=False):
        """Write the hub's specifications to a hub file that :meth:`from_toml` reads back.

        Every expert must be a :class:`LazyExpert` (a live model object has no specification to
        write). Local paths inside the file's folder are written relative to it, others stay
        absolute. What each expert declares, or has found out by being loaded (``n_outputs``,
        ``fingerprint``, ``head_names``), is written, so the file's next reader needs no
        weights for them.

        Parameters
        ----------
        path : str or path-like
        declare_missing : bool, default=False
            Load each expert whose ``n_outputs`` or ``fingerprint`` is not known yet (one at a
            time, released after) so that the file declares them.

        Raises
        ------
        TypeError
            When an expert is not a :class:`LazyExpert`, or an argument cannot be written as
            TOML (e.g. a Python callable).
        """
        write_hub_file(self, path, declare_missing=declare_missing)

    def __repr__(self):
        return f"ModelHub({self.names})"
