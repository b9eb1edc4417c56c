"""Content hashes that key every cache: same content, same key, on any machine."""

import hashlib
import json

import numpy as np


def new_hasher():
    """A fresh hasher; every content key in skmll comes from this one function."""
    return hashlib.blake2b(digest_size=16)


def hash_array(array, hasher=None):
    """Hash an array's dtype, shape and bytes (not its memory layout)."""
    array = np.ascontiguousarray(array)
    h = hasher if hasher is not None else new_hasher()
    h.update(f"{array.dtype.str}|{array.shape}|".encode())
    h.update(array.data)
    return h if hasher is not None else h.hexdigest()


def hash_file(path, chunk_size=1 << 20):
    """Hash a file's bytes."""
    h = new_hasher()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            h.update(chunk)
    return h.hexdigest()


def hash_json(obj):
    """Hash any JSON-serialisable value (keys sorted, so dict order does not matter)."""
    h = new_hasher()
    h.update(json.dumps(obj, sort_keys=True, default=str).encode())
    return h.hexdigest()
