"""Content-addressed memory of expert outputs, for repeated predictions on the same images."""

import numpy as np

from ..utils import hash_array, hash_json, load_record, resolve_cache_dir, save_record
from ._base import expert_fingerprint


class MemoizedExpert:
    """An expert that remembers its logits per input batch, keyed by content.

    Evaluations that run many classifiers (benchmarks, grid searches, a demo run twice) send the
    same image batches to the same experts; this wrapper computes each (expert, batch) once. The
    key is the expert's fingerprint and a hash of the batch, so a changed model or image is
    never served stale outputs. It labels like the wrapped expert (same fingerprint).

    Parameters
    ----------
    expert : Expert
    cache_dir : path, None or False, default=False
        Also keep outputs on disk (None: the default folder); False keeps them in memory only.

    Examples
    --------
    >>> import numpy as np
    >>> class Mean:
    ...     name, n_outputs, fingerprint, calls = "mean", 2, "v1", 0
    ...     def logits(self, images):
    ...         Mean.calls += 1
    ...         m = images.mean(axis=(1, 2, 3))
    ...         return np.stack([m, 1 - m], axis=1)
    >>> memo = MemoizedExpert(Mean())
    >>> batch = np.zeros((2, 4, 4, 3), np.float32)
    >>> _ = memo.logits(batch); _ = memo.logits(batch.copy())
    >>> Mean.calls
    1
    """

    def __init__(self, expert, cache_dir=False):
        self.expert = expert
        self.name = expert.name
        self.n_outputs = expert.n_outputs
        declared = getattr(expert, "fingerprint", None)
        # Keep a declared fingerprint as is, so labels cached for the bare expert are reused.
        self.fingerprint = declared if isinstance(declared, str) else expert_fingerprint(expert)
        self.cache_dir = cache_dir
        self._memory = {}

    def logits(self, images):
        key = hash_json([self.fingerprint, hash_array(np.asarray(images))])
        if key in self._memory:
            return self._memory[key]
        folder = resolve_cache_dir(self.cache_dir)
        record = load_record(folder / "outputs", key) if folder is not None else None
        if record is not None:
            out = record[0]["logits"]
        else:
            out = np.asarray(self.expert.logits(images))
            if folder is not None:
                save_record(folder / "outputs", key, {"logits": out}, {"expert": self.name})
        self._memory[key] = out
        return out

    def __getstate__(self):
        return {**self.__dict__, "_memory": {}}  # outputs are a cache, not state

    def __repr__(self):
        return f"MemoizedExpert({self.expert!r})"
