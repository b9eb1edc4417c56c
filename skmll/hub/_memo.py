"""Content-addressed memory of expert outputs, for repeated predictions on the same images."""

import numpy as np

from ..utils import hash_array, hash_json, load_record, resolve_cache_dir, save_record


class MemoizedExpert:
    """An expert that remembers its logits per image, keyed by content.

    Evaluations that run many classifiers (benchmarks, grid searches, a demo run twice) send the
    same images to the same experts; this wrapper computes each (expert, image) once. Keys are
    the expert's fingerprint and the image bytes, so a changed model or image never gets stale
    outputs. It labels like the wrapped expert (same fingerprint, same cached labels). An
    expert without a declared ``fingerprint`` is remembered in memory only, by this wrapper.

    Parameters
    ----------
    expert : Expert
    cache_dir : path, None or False, default=False
        Also keep each call's outputs on disk (None: the default folder); False: memory only.
        Only used when the expert declares a ``fingerprint``.

    Examples
    --------
    >>> import numpy as np
    >>> class Mean:
    ...     name, n_outputs, fingerprint, images_seen = "mean", 2, "v1", 0
    ...     def logits(self, images):
    ...         Mean.images_seen += len(images)
    ...         m = images.mean(axis=(1, 2, 3))
    ...         return np.stack([m, 1 - m], axis=1)
    >>> memo = MemoizedExpert(Mean())
    >>> batch = np.random.default_rng(0).random((3, 4, 4, 3), dtype=np.float32)
    >>> _ = memo.logits(batch); _ = memo.logits(batch[1:])
    >>> Mean.images_seen
    3
    """

    def __init__(self, expert, cache_dir=False):
        self.expert = expert
        self.name = expert.name
        self.n_outputs = expert.n_outputs
        declared = getattr(expert, "fingerprint", None)
        # Keep a declared fingerprint as is, so labels cached for the bare expert are reused;
        # without one there is no safe key (see expert_fingerprint), so nothing goes to disk.
        self.fingerprint = declared if isinstance(declared, str) else None
        self.cache_dir = cache_dir
        self._memory = {}

    def logits(self, images):
        images = np.asarray(images)
        folder = resolve_cache_dir(self.cache_dir) if self.fingerprint is not None else None
        key = hash_json([self.fingerprint, hash_array(images)]) if folder is not None else None
        record = load_record(folder / "outputs", key) if folder is not None else None
        if record is not None:
            return record[0]["logits"]
        # Rows are remembered one image at a time, so overlapping batches (several tasks drawn
        # from one test set) share work; only unseen images reach the expert, in one call.
        row_keys = [hash_array(image) for image in images]
        missing = [i for i, k in enumerate(row_keys) if k not in self._memory]
        if missing:
            fresh = np.asarray(self.expert.logits(images[missing]))
            for i, row in zip(missing, fresh):
                self._memory[row_keys[i]] = row
        out = (np.stack([self._memory[k] for k in row_keys]) if row_keys
               else np.zeros((0, self.n_outputs), np.float32))
        if folder is not None:
            save_record(folder / "outputs", key, {"logits": out}, {"expert": self.name})
        return out

    def __getstate__(self):
        return {**self.__dict__, "_memory": {}}  # outputs are a cache, not state

    def __repr__(self):
        return f"MemoizedExpert({self.expert!r})"
