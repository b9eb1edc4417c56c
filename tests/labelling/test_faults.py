"""Labelling under faults: a killed process resumes, damaged records are recomputed, and a
failing expert in a parallel run costs only its own label.

The kill test runs a real labelling job in a subprocess and sends it SIGKILL between two stored
experts; the job's module (experts and SDAG) is then imported here, so the rerun sees experts
with the same weights, hence the same cache keys.
"""

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from joblib import parallel_config

import skmll
from skmll import ModelHub, ModelLabeler, TorchExpert
from skmll.hub import expert_fingerprint
from skmll.labelling import LabellingError
from skmll.utils import CorruptRecordWarning, save_record
from skmll.utils._records import STALE_TEMP_SECONDS

from ..conftest import CountingExpert

JOB = textwrap.dedent('''
    """A labelling job: four tiny CNN experts with seeded weights on a 9-node SDAG."""

    import sys
    import time

    import numpy as np
    import torch

    from skmll import ModelHub, ModelLabeler, SemanticDAG, TorchExpert

    torch.set_num_threads(1)  # the same arithmetic in the job and in the test process
    N_EXPERTS = 4
    BATCH_SIZE = 16


    def make_sdag():
        rng = np.random.default_rng(0)
        leaves = [f"leaf{i}" for i in range(8)]
        data = {leaf: rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8) for leaf in leaves}
        return SemanticDAG(["root"] + leaves, edges=[("root", leaf) for leaf in leaves],
                           data=data)


    def make_experts():
        experts = []
        for seed in range(N_EXPERTS):
            torch.manual_seed(seed)
            net = torch.nn.Sequential(
                torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2),
                torch.nn.Flatten(), torch.nn.Linear(16, 3 + seed))
            experts.append(TorchExpert(net, name=f"cnn{seed}", input_size=(16, 16)))
        return experts


    def labeler(cache_dir, **params):
        return ModelLabeler(make_sdag(), batch_size=BATCH_SIZE, images_per_shard=32,
                            cache_dir=cache_dir, verbose=0, **params)


    class Slow:
        """The same function and cache key as ``expert``; each call takes longer."""

        def __init__(self, expert, seconds):
            self.expert, self.seconds = expert, seconds
            self.name, self.n_outputs = expert.name, expert.n_outputs
            self.fingerprint = expert.fingerprint

        def logits(self, images):
            time.sleep(self.seconds)
            return self.expert.logits(images)


    if __name__ == "__main__":
        cache_dir, seconds_per_batch = sys.argv[1], float(sys.argv[2])
        print("labelling", flush=True)
        labeler(cache_dir).fit(ModelHub([Slow(e, seconds_per_batch) for e in make_experts()]))
        print("done", flush=True)
''')


@pytest.fixture(scope="module")
def job_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("job") / "labelling_job.py"
    path.write_text(JOB)
    return path


@pytest.fixture(scope="module")
def job(job_path):
    spec = importlib.util.spec_from_file_location("labelling_job", job_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reference_labels(job):
    """Labels of an uninterrupted run without any cache."""
    return job.labeler(False).fit(ModelHub(job.make_experts())).labels_


def assert_same_labels(labels, reference):
    assert list(labels) == list(reference)
    for name, label in labels.items():
        np.testing.assert_array_equal(label.scores, reference[name].scores)
        np.testing.assert_array_equal(label.probabilities, reference[name].probabilities)


def record_folder(cache_dir):
    return cache_dir / "labels" / "v1"


def stored_keys(cache_dir):
    return {path.stem for path in record_folder(cache_dir).glob("*.json")}


def payload(folder, key):
    """The npz file the record of ``key`` names (``<key>.<checksum>.npz``)."""
    (path,) = folder.glob(f"{key}.*.npz")
    return path


def start_job(job_path, cache_dir, seconds_per_batch):
    env = dict(os.environ)
    # The job imports skmll from where this process does, installed or not.
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(skmll.__file__).resolve().parents[1]), env.get("PYTHONPATH")]))
    return subprocess.Popen([sys.executable, str(job_path), str(cache_dir),
                             str(seconds_per_batch)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_after_first_stored_expert(process, cache_dir, timeout=180):
    """SIGKILL ``process`` as soon as one expert's record is in place; return the stored keys."""
    deadline = time.monotonic() + timeout
    while not stored_keys(cache_dir):
        if process.poll() is not None:
            pytest.fail(f"the job ended before storing anything: {process.communicate()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the job stored nothing in time")
        time.sleep(0.01)
    still_running = process.poll() is None
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    assert still_running and process.returncode == -signal.SIGKILL
    return stored_keys(cache_dir)


def plant_interrupted_writes(folder, unstored_keys):
    """What a kill during ``save_record`` leaves: a partial temp file, or an npz without JSON."""
    partial_temp = folder / f".{unstored_keys[0]}.npz.k1ll3d.tmp"
    partial_temp.write_bytes(b"PK\x03\x04 half an npz")
    (folder / f"{unstored_keys[-1]}.{'0' * 32}.npz").write_bytes(
        b"PK\x03\x04 npz whose JSON never came")
    return partial_temp


def test_sigkill_during_labelling_then_rerun_resumes(tmp_path, job_path, job, reference_labels):
    process = start_job(job_path, tmp_path, seconds_per_batch=0.4)
    stored = kill_after_first_stored_expert(process, tmp_path)
    keys = {expert_fingerprint(e): e.name for e in job.make_experts()}
    assert 1 <= len(stored) < job.N_EXPERTS and stored <= set(keys)
    unstored = sorted(set(keys) - stored)
    partial_temp = plant_interrupted_writes(record_folder(tmp_path), unstored)

    counted = [CountingExpert(e) for e in job.make_experts()]
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorruptRecordWarning)  # nothing half-written is read
        labeler = job.labeler(tmp_path).fit(ModelHub(counted))

    images_per_expert = int(job.make_sdag().n_images.sum())
    assert {e.name: e.n_images for e in counted} == {
        name: 0 if key in stored else images_per_expert for key, name in keys.items()}
    assert labeler.n_forward_images_ == images_per_expert * len(unstored)
    assert_same_labels(labeler.labels_, reference_labels)
    # Every expert is stored now; a third run computes nothing. The young temp file may be a
    # write in progress elsewhere, so it is kept.
    assert stored_keys(tmp_path) == set(keys) and partial_temp.exists()
    again = [CountingExpert(e) for e in job.make_experts()]
    assert_same_labels(job.labeler(tmp_path).fit(ModelHub(again)).labels_, reference_labels)
    assert sum(e.n_calls for e in again) == 0


def test_stale_temp_files_are_removed_by_the_next_write(tmp_path):
    stale, fresh = tmp_path / ".old.npz.a1.tmp", tmp_path / ".new.json.b2.tmp"
    for path in (stale, fresh):
        path.write_bytes(b"partial")
    long_ago = time.time() - STALE_TEMP_SECONDS - 60
    os.utime(stale, (long_ago, long_ago))
    save_record(tmp_path, "record", {"a": np.arange(3)}, {})
    assert not stale.exists() and fresh.exists()


def edit_node_key(json_path):
    """Valid JSON that no longer matches what was written: one node key changed."""
    record = json.loads(json_path.read_text())
    key = record["meta"]["node_keys"][0]
    record["meta"]["node_keys"][0] = ("0" if key[0] != "0" else "1") + key[1:]
    json_path.write_text(json.dumps(record))


def swap_files(first, second):
    first_bytes = first.read_bytes()
    first.write_bytes(second.read_bytes())
    second.write_bytes(first_bytes)


DAMAGE = {
    "json-truncated": lambda js, npz, other_npz: js.write_text(js.read_text()[:40]),
    "json-emptied": lambda js, npz, other_npz: js.write_bytes(b""),
    "json-key-edited": lambda js, npz, other_npz: edit_node_key(js),
    "json-not-an-object": lambda js, npz, other_npz: js.write_text("[1, 2]"),
    "npz-missing": lambda js, npz, other_npz: npz.unlink(),
    "npz-swapped": lambda js, npz, other_npz: swap_files(npz, other_npz),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_record_is_detected_warned_and_recomputed(tmp_path, job, reference_labels,
                                                          damage):
    experts = job.make_experts()[:2]
    job.labeler(tmp_path).fit(ModelHub(experts))
    folder = record_folder(tmp_path)
    key, other = (expert_fingerprint(e) for e in experts)
    DAMAGE[damage](folder / f"{key}.json", payload(folder, key), payload(folder, other))

    counted = [CountingExpert(e) for e in experts]
    with pytest.warns(CorruptRecordWarning, match="recomputing") as caught:
        labeler = job.labeler(tmp_path).fit(ModelHub(counted))
    damaged = {key, other} if damage == "npz-swapped" else {key}
    assert {re.search(r"(\w+) is unreadable", str(w.message))[1] for w in caught} == damaged
    images_per_expert = int(job.make_sdag().n_images.sum())
    assert [e.n_images for e in counted] == [
        images_per_expert if expert_fingerprint(e) in damaged else 0 for e in experts]
    assert_same_labels(labeler.labels_, {e.name: reference_labels[e.name] for e in experts})

    # The recomputed records are whole: a third run warns about nothing and computes nothing.
    third = [CountingExpert(e) for e in experts]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        job.labeler(tmp_path).fit(ModelHub(third))
    assert sum(e.n_calls for e in third) == 0


def misconfigured_expert():
    """A real torch expert whose first layer expects 8x8 inputs while it is fed 16x16 ones."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 3))
    return TorchExpert(net, name="misconfigured", input_size=(16, 16), n_outputs=3)


@pytest.mark.parametrize("on_error", ["raise", "warn", "skip"])
def test_failing_expert_in_a_parallel_run(tmp_path, job, reference_labels, on_error):
    good = job.make_experts()[:3]
    hub = ModelHub([good[0], misconfigured_expert(), *good[1:]])
    labeler = job.labeler(tmp_path, n_jobs=2, on_error=on_error)
    with parallel_config(backend="loky"):
        if on_error == "raise":
            with pytest.raises(LabellingError, match=r"1 expert.*'misconfigured'.*mat1 and mat2"):
                labeler.fit(hub)
        elif on_error == "warn":
            with pytest.warns(UserWarning, match="'misconfigured'.*mat1 and mat2"):
                labeler.fit(hub)
        else:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                labeler.fit(hub)
            assert not [w for w in caught if "misconfigured" in str(w.message)]
    assert list(labeler.failed_experts_) == ["misconfigured"]
    if on_error != "raise":
        assert labeler.hub_.names == [e.name for e in good]
        assert_same_labels(labeler.labels_, {e.name: reference_labels[e.name] for e in good})
    # The other experts finished and were stored: refitting them runs nothing.
    counted = [CountingExpert(e) for e in good]
    refit = job.labeler(tmp_path).fit(ModelHub(counted))
    assert sum(e.n_calls for e in counted) == 0
    assert_same_labels(refit.labels_, {e.name: reference_labels[e.name] for e in good})
