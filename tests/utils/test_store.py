"""The arrays + JSON record store: round trips, checksums, no pickle, atomic replacement."""

import json

import numpy as np
import pytest

from skmll.utils import (CorruptRecordWarning, hash_array, hash_json, load_record,
                         resolve_cache_dir, save_record)


def test_round_trip(tmp_path):
    arrays = {"a": np.arange(6, dtype=np.float64).reshape(2, 3), "n": np.array([3, 4])}
    save_record(tmp_path, "key", arrays, {"expert": "x", "nodes": ["n1", "n2"]})
    loaded, meta = load_record(tmp_path, "key")
    np.testing.assert_array_equal(loaded["a"], arrays["a"])
    assert meta == {"expert": "x", "nodes": ["n1", "n2"]}
    assert not list(tmp_path.glob("*.tmp"))


def test_missing_record_is_none(tmp_path):
    assert load_record(tmp_path, "absent") is None


@pytest.mark.parametrize("damage", ["truncate", "flip", "bad-json"])
def test_damaged_record_warns_and_reads_as_missing(tmp_path, damage):
    save_record(tmp_path, "key", {"a": np.ones(100)}, {})
    npz, js = tmp_path / "key.npz", tmp_path / "key.json"
    if damage == "truncate":
        npz.write_bytes(npz.read_bytes()[:50])
    elif damage == "flip":
        data = bytearray(npz.read_bytes())
        data[-30] ^= 0xFF
        npz.write_bytes(bytes(data))
    else:
        js.write_text("{not json")
    with pytest.warns(CorruptRecordWarning):
        assert load_record(tmp_path, "key") is None


def test_object_arrays_are_refused(tmp_path):
    with pytest.raises(ValueError, match="dtype object"):
        save_record(tmp_path, "key", {"a": np.array([{"x": 1}], dtype=object)}, {})


def test_hashes_follow_content():
    a = np.arange(10, dtype=np.float32)
    assert hash_array(a) == hash_array(a.copy())
    assert hash_array(a) != hash_array(a.astype(np.float64))
    assert hash_array(a) != hash_array(a.reshape(2, 5))
    assert hash_json({"a": 1, "b": 2}) == hash_json({"b": 2, "a": 1})


def test_cache_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("SKMLL_CACHE_DIR", str(tmp_path / "home"))
    assert resolve_cache_dir(None) == tmp_path / "home"
    assert resolve_cache_dir(False) is None
    assert resolve_cache_dir(tmp_path / "x").is_dir()
    json.dumps(str(resolve_cache_dir(None)))
