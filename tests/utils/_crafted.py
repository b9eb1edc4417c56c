"""Payloads crafted the way an attacker would: a real decompression bomb, a huge declaration.

The bomb is a genuine deflate stream: decompressing it yields every byte its header declares.
It is assembled from one compressed block of zeros repeated (a full flush makes each block
independent), so building a gigabyte bomb costs milliseconds, and the zip around it is written
by hand because :mod:`zipfile` cannot store data compressed elsewhere.
"""

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np

from skmll.utils import hash_json

_BLOCK = 2**24


def npy_header(shape, dtype):
    """The bytes ``np.save`` writes before the data of an array of ``shape`` and ``dtype``."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": tuple(shape)})
    return buffer.getvalue()


def _deflated_zeros(prefix, n_zero_blocks):
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(bytes(_BLOCK)) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(prefix)
    for _ in range(n_zero_blocks):
        crc = zlib.crc32(bytes(_BLOCK), crc)
    return stream + block * n_zero_blocks + compressor.flush(), crc


def zip_bytes(members):
    """A zip archive of ``(name, method, crc, size, stored bytes)`` members, written by hand."""
    local, central = io.BytesIO(), io.BytesIO()
    for name, method, crc, size, data in members:
        offset, encoded = local.tell(), name.encode()
        local.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc,
                                len(data), size, len(encoded), 0) + encoded + data)
        central.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21,
                                  crc, len(data), size, len(encoded), 0, 0, 0, 0, 0, offset)
                      + encoded)
    directory = central.getvalue()
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members),
                      len(directory), local.tell(), 0)
    return local.getvalue() + directory + end


def stored_member(name, array):
    data = npy_header(array.shape, array.dtype) + np.ascontiguousarray(array).tobytes()
    return (f"{name}.npy", 0, zlib.crc32(data), len(data), data)


def bomb_member(name, shape, dtype=np.float64):
    """An ``.npy`` of zeros of ``shape``, deflated: small stored, its full size decompressed."""
    header = npy_header(shape, dtype)
    n_bytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if n_bytes % _BLOCK:
        raise ValueError(f"the array must hold a multiple of {_BLOCK} bytes")
    data, crc = _deflated_zeros(header, n_bytes // _BLOCK)
    return (f"{name}.npy", 8, crc, len(header) + n_bytes, data)


def declared_only_member(name, shape, dtype=np.float64):
    """An ``.npy`` that declares ``shape`` and holds no data at all."""
    header = npy_header(shape, dtype)
    return (f"{name}.npy", 0, zlib.crc32(header), len(header), header)


def replace_payload(folder, key, payload, **meta_changes):
    """Point the record ``key`` in ``folder`` at ``payload``, every checksum recomputed."""
    from skmll.utils._records import _checksum

    folder = Path(folder)
    record = json.loads((folder / f"{key}.json").read_text())
    (folder / record["npz"]).unlink()
    checksum = _checksum(payload)
    record.update(npz=f"{key}.{checksum}.npz", npz_checksum=checksum)
    record["meta"].update(meta_changes)
    (folder / record["npz"]).write_bytes(payload)
    del record["json_checksum"]
    record["json_checksum"] = hash_json(record)
    (folder / f"{key}.json").write_text(json.dumps(record))
