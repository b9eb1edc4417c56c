"""One digest over everything a label directory holds, for a publisher to print and a user to
check (as OCI images and Hugging Face revisions are addressed by theirs)."""

import hashlib
import json
import os
from pathlib import Path

from ._store import STORE_FOLDER

DIGEST_PREFIX = "sha256:"
"""What every label directory digest starts with (the hash function's name)."""
# Empty files whose presence says which experts were ever locked, not what the labels are.
_LOCKS = (STORE_FOLDER, ".locks")
# The writers' lock of the zoo folder (skmll.zoo), empty too and left by every append.
_LOCK_FILES = {"zoo/.lock"}
_CHUNK = 2**20


def label_dir_digest(directory):
    """The content digest of a label directory: ``"sha256:<64 hex digits>"``.

    What it covers: every file below ``directory`` (records, payloads, ``sdag.json``,
    ``hub.toml``, the zoo's manifest and segments, bundled model files, any module beside the
    hub file and its ``__pycache__``), by its path relative to ``directory`` and all of its
    bytes. Symbolic links are followed, as readers follow them, so the content they lead to is
    covered, and each real folder is read once. What it leaves out: lock files
    (``labels/.locks/``, ``zoo/.lock``) and temporary files of
    writes in progress (``.<name>.tmp``), which are never read; permissions, times and empty
    folders; model files named by an absolute path outside the directory (their fingerprints,
    in ``hub.toml``, are covered, and an expert refuses to build from weights that do not
    match its fingerprint).

    The listing is one line per file, sorted by relative path (POSIX separators, compared as
    text), ``<sha256 of its bytes> <size in bytes> <path as a JSON string>``, each ending in a
    newline; the digest is the SHA-256 of that listing encoded as UTF-8.

    Parameters
    ----------
    directory : path

    Returns
    -------
    str

    Raises
    ------
    FileNotFoundError
        When ``directory`` is not a folder.
    OSError
        When a file in it cannot be read (the message names it).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "hub.toml").write_text("")
    >>> label_dir_digest(folder)
    'sha256:26635607aca96f1e720d3532e991b0a48b464425a529bd8e4a04058d89be27e8'
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"label directory {str(directory)!r} does not exist")
    listing = "".join(f"{_file_line(directory / path)} {json.dumps(path, ensure_ascii=False)}\n"
                      for path in sorted(_covered_files(directory)))
    return DIGEST_PREFIX + hashlib.sha256(listing.encode("utf-8")).hexdigest()


def _covered_files(directory):
    """Relative POSIX paths of the files the digest covers."""
    seen = set()
    for folder, subfolders, files in os.walk(directory, followlinks=True):
        relative = Path(folder).relative_to(directory)
        real = os.path.realpath(folder)
        if real in seen or relative.parts[:2] == _LOCKS:
            subfolders[:] = []
            continue
        seen.add(real)
        subfolders.sort()
        for name in files:
            path = (relative / name).as_posix()
            if not (name.startswith(".") and name.endswith(".tmp")) and path not in _LOCK_FILES:
                yield path


def _file_line(path):
    """``"<sha256> <size>"`` of the bytes read in one pass."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return f"{digest.hexdigest()} {size}"
