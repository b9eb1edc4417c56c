"""The arrays + JSON record store: round trips, checksums, no pickle, atomic replacement,
self-describing records, permissions that follow the umask."""

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import skmll
from skmll.utils import (CorruptRecordWarning, atomic_write_bytes, hash_array, hash_json,
                         load_record, resolve_cache_dir, save_record)
from skmll.utils._records import STALE_TEMP_SECONDS


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
    (npz,), js = tmp_path.glob("key.*.npz"), tmp_path / "key.json"
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


def copy_record(folder, source, target):
    """What a user copying one record's files over another's does: every file of ``source``
    lands under the name ``target`` would have (whatever the record layout)."""
    for path in folder.glob(f"{target}.*"):
        path.unlink()
    for path in folder.glob(f"{source}.*"):
        (folder / path.name.replace(source, target, 1)).write_bytes(path.read_bytes())


def test_record_copied_over_another_is_refused(tmp_path):
    save_record(tmp_path, "alpha", {"w": np.full((2, 3), 1.0)}, {"of": "alpha"})
    save_record(tmp_path, "beta", {"w": np.full((2, 3), 2.0)}, {"of": "beta"})
    copy_record(tmp_path, "alpha", "beta")
    with pytest.warns(CorruptRecordWarning, match=r"beta is unreadable.*'alpha'"):
        assert load_record(tmp_path, "beta") is None
    np.testing.assert_array_equal(load_record(tmp_path, "alpha")[0]["w"], np.full((2, 3), 1.0))


def test_expected_metadata_is_checked(tmp_path):
    save_record(tmp_path, "k", {"w": np.zeros(2)}, {"encoder": "e1", "n_texts": 2})
    assert load_record(tmp_path, "k", expect={"encoder": "e1", "n_texts": 2}) is not None
    with pytest.warns(CorruptRecordWarning, match="another encoder"):
        assert load_record(tmp_path, "k", expect={"encoder": "e2", "n_texts": 2}) is None


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_files_follow_the_umask_and_the_folders_group(tmp_path, umask):
    shared = tmp_path / "shared"
    shared.mkdir()
    group = _another_group()
    if group is not None:  # a set-gid folder of another group, as a team's shared folder is
        os.chown(shared, -1, group)
        shared.chmod(0o2777 & ~umask)
    previous = os.umask(umask)
    try:
        save_record(shared / "records", "k", {"a": np.arange(3)}, {})
        atomic_write_bytes(shared / "blob.bin", b"x")
    finally:
        os.umask(previous)
    files = [p for p in shared.rglob("*") if p.is_file()]
    assert len(files) == 3
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path
    assert stat.S_IMODE((shared / "records").stat().st_mode) & 0o777 == 0o777 & ~umask
    if group is not None:
        assert {p.stat().st_gid for p in [*files, shared / "records"]} == {group}


def _another_group():
    """A group id other than this process's, which this process may give a folder; or None."""
    if os.geteuid() == 0:
        return os.getegid() + 4242
    others = [g for g in os.getgroups() if g != os.getegid()]
    return others[0] if others else None


KILL_BEFORE_POINTER = textwrap.dedent('''
    import os, signal, sys
    import numpy as np
    from skmll.utils import save_record

    real_replace = os.replace

    def replace(source, target):
        if str(target).endswith(".json"):  # killed between the payload and the pointer
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(source, target)

    os.replace = replace
    save_record(sys.argv[1], "k", {"rows": np.arange(10.0)}, {"n": 10})
''')


def test_kill_between_the_two_files_keeps_the_previous_record(tmp_path):
    save_record(tmp_path, "k", {"rows": np.arange(4.0)}, {"n": 4})
    script = tmp_path / "job.py"
    script.write_text(KILL_BEFORE_POINTER)
    process = subprocess.run([sys.executable, str(script), str(tmp_path)], env=_child_env())
    assert process.returncode == -signal.SIGKILL
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        arrays, meta = load_record(tmp_path, "k")
    np.testing.assert_array_equal(arrays["rows"], np.arange(4.0))
    assert meta == {"n": 4}
    # The new payload the killed writer left is removed once stale, by the next write.
    (orphan,) = [p for p in tmp_path.glob("k.*.npz") if p.name != _named_payload(tmp_path)]
    long_ago = time.time() - STALE_TEMP_SECONDS - 60
    os.utime(orphan, (long_ago, long_ago))
    save_record(tmp_path, "other", {"rows": np.zeros(1)}, {})
    assert not orphan.exists() and load_record(tmp_path, "k") is not None


def _named_payload(folder):
    return json.loads((folder / "k.json").read_text())["npz"]


def _child_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(skmll.__file__).resolve().parents[1]), env.get("PYTHONPATH")]))
    return env


def test_disk_full_leaves_the_previous_record_whole(tmp_path, monkeypatch):
    save_record(tmp_path, "k", {"rows": np.arange(3.0)}, {})

    def disk_full(source, target):  # stands in for the OS: ENOSPC when a file is moved in place
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_record(tmp_path, "k", {"rows": np.arange(30.0)}, {})
    monkeypatch.undo()
    assert not list(tmp_path.glob(".*.tmp"))
    np.testing.assert_array_equal(load_record(tmp_path, "k")[0]["rows"], np.arange(3.0))


def test_readers_never_see_a_half_replaced_record(tmp_path):
    versions = [np.full(5000, float(v)) for v in range(4)]
    save_record(tmp_path, "k", {"rows": versions[0]}, {})
    stop = threading.Event()

    def rewrite():
        i = 0
        while not stop.is_set():
            i += 1
            save_record(tmp_path, "k", {"rows": versions[i % len(versions)]}, {})

    writer = threading.Thread(target=rewrite)
    writer.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            seen = {float(load_record(tmp_path, "k")[0]["rows"][0]) for _ in range(300)}
    finally:
        stop.set()
        writer.join()
    assert seen <= {0.0, 1.0, 2.0, 3.0} and len(seen) > 1


def test_record_of_skmll_0_1_is_read_as_absent_and_replaced(tmp_path):
    # The format-1 pair: <key>.npz and a JSON without format, key or payload name.
    (tmp_path / "k.npz").write_bytes(b"PK old payload")
    record = {"meta": {}, "npz_checksum": "0" * 32, "arrays": ["a"]}
    (tmp_path / "k.json").write_text(json.dumps({**record, "json_checksum": hash_json(record)}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_record(tmp_path, "k") is None
    save_record(tmp_path, "k", {"a": np.arange(2)}, {})
    assert not (tmp_path / "k.npz").exists()
    np.testing.assert_array_equal(load_record(tmp_path, "k")[0]["a"], np.arange(2))


def test_a_decompression_bomb_is_refused_before_it_expands(tmp_path):
    from ._crafted import bomb_member, replace_payload, stored_member, zip_bytes

    save_record(tmp_path, "key", {"x": np.zeros(4)}, {})
    bomb = zip_bytes([bomb_member("x", (2**26,))])   # 0.5 MB stored, 512 MiB inflated
    assert len(bomb) < 2**20
    replace_payload(tmp_path, "key", bomb)
    with pytest.warns(CorruptRecordWarning, match="'x' is compressed"):
        assert load_record(tmp_path, "key") is None
    # the same archive with its member stored plainly loads: only the compression is refused
    replace_payload(tmp_path, "key", zip_bytes([stored_member("x", np.arange(5.0))]))
    np.testing.assert_array_equal(load_record(tmp_path, "key")[0]["x"], np.arange(5.0))


@pytest.mark.parametrize("shape", [(10**13,), (1, 10**13), (3, 2**62)])
def test_a_huge_declared_array_is_refused_before_allocation(tmp_path, shape):
    from ._crafted import declared_only_member, replace_payload, zip_bytes

    save_record(tmp_path, "key", {"x": np.zeros(4)}, {})
    replace_payload(tmp_path, "key", zip_bytes([declared_only_member("x", shape)]))
    assert (tmp_path / "key.json").stat().st_size + sum(
        p.stat().st_size for p in tmp_path.glob("key.*.npz")) < 1000
    with pytest.warns(CorruptRecordWarning, match=r"declares shape .* but the archive holds 0"):
        assert load_record(tmp_path, "key") is None


def test_a_payload_over_the_cap_is_refused_unread(tmp_path, monkeypatch):
    from skmll.utils import _records as store_module

    save_record(tmp_path, "key", {"x": np.zeros(1000)}, {})
    monkeypatch.setattr(store_module, "MAX_PAYLOAD_BYTES", 4000)
    with pytest.warns(CorruptRecordWarning, match="over the 4000 bytes a record may take"):
        assert load_record(tmp_path, "key") is None


def test_shapes_declared_by_the_metadata_are_checked_first(tmp_path):
    from skmll.utils import RecordError, read_record

    save_record(tmp_path, "key", {"x": np.zeros((2, 3))}, {"rows": 2})
    arrays, _ = read_record(tmp_path, "key", shapes=lambda meta: {"x": (meta["rows"], 3)})
    assert arrays["x"].shape == (2, 3) and arrays["x"].flags.writeable
    with pytest.raises(RecordError, match=r"shape \(2, 3\) where the record's metadata "
                                          r"declares \(5, 3\)"):
        read_record(tmp_path, "key", shapes=lambda meta: {"x": (5, 3)})


def test_a_write_sweeps_its_folder_but_never_through_a_symbolic_link(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    old_files = [photos / "holiday.photos.npz", photos / ".session.tmp"]
    for path in old_files:
        path.write_bytes(b"mine")
        then = time.time() - STALE_TEMP_SECONDS - 60
        os.utime(path, (then, then))
    (tmp_path / "cache").symlink_to(photos, target_is_directory=True)
    save_record(tmp_path / "cache", "key", {"x": np.zeros(2)}, {})
    assert all(path.read_bytes() == b"mine" for path in old_files)
    save_record(photos, "key", {"x": np.zeros(2)}, {})   # the folder itself: swept
    assert not any(path.exists() for path in old_files)
