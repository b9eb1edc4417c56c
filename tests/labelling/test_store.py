"""The label directory as a shared artifact: records that carry their own key, checked values,
permissions that follow the umask, writes that fail softly, kills that lose nothing, and
processes that share the work.

The experts are tiny seeded CNNs on 12x10 colour "texture" images, defined in a job module that
the tests also run as real subprocesses; the text-store test encodes with scikit-learn's
HashingVectorizer.
"""

import importlib.util
import json
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import HashingVectorizer

import skmll
from skmll import ModelHub
from skmll.hub import expert_fingerprint
from skmll.labelling import LabelStore
from skmll.labelling import _store as label_store_module
from skmll.selection._text import embed_texts
from skmll.utils import (CacheWriteWarning, CorruptRecordWarning, hash_json, load_record,
                         save_record)
from skmll.utils._records import STALE_TEMP_SECONDS

from ..conftest import CountingExpert

JOB = textwrap.dedent('''
    """Labelling jobs on one label directory: four seeded CNN experts, 12x10 texture images."""

    import json
    import os
    import signal
    import sys
    import time
    import warnings
    from pathlib import Path

    import numpy as np
    import torch

    from skmll import ModelHub, ModelLabeler, SemanticDAG, TorchExpert

    torch.set_num_threads(1)  # the same arithmetic in every process
    LEAVES = ["ripple", "grain", "speckle", "stripe", "blotch", "mesh"]
    WIDTHS = [3, 3, 5, 2]  # the first two have the same width


    def make_sdag(leaves=LEAVES):
        rng = np.random.default_rng(7)
        data = {leaf: rng.integers(0, 256, (5 + i, 12, 10, 3), dtype=np.uint8)
                for i, leaf in enumerate(LEAVES)}
        return SemanticDAG(["texture"] + list(leaves), edges=[("texture", leaf) for leaf in leaves],
                           data={leaf: data[leaf] for leaf in leaves})


    def make_experts():
        experts = []
        for seed, width in enumerate(WIDTHS):
            torch.manual_seed(100 + seed)
            net = torch.nn.Sequential(
                torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2),
                torch.nn.Flatten(), torch.nn.Linear(16, width))
            experts.append(TorchExpert(net, name=f"texture-net{seed}", input_size=(12, 10)))
        return experts


    def labeler(cache_dir, sdag=None):
        return ModelLabeler(sdag if sdag is not None else make_sdag(), batch_size=8,
                            images_per_shard=16, cache_dir=cache_dir, verbose=0)


    class Slow:
        """The same function and key as ``expert``; counts its images, sleeps on each call."""

        def __init__(self, expert, seconds):
            self.expert, self.seconds, self.n_images = expert, seconds, 0
            self.name, self.n_outputs = expert.name, expert.n_outputs
            self.fingerprint = expert.fingerprint

        def logits(self, images):
            time.sleep(self.seconds)
            self.n_images += len(images)
            return self.expert.logits(images)


    def kill_before_any_record_pointer():
        """SIGKILL this process when a record's JSON is about to be moved into place."""
        real_replace = os.replace

        def replace(source, target):
            if str(target).endswith(".json") and not str(target).endswith("skmll-labels.json"):
                os.kill(os.getpid(), signal.SIGKILL)
            real_replace(source, target)

        os.replace = replace


    def report(fitted, experts, caught):
        return {"n_forward_images": fitted.n_forward_images_,
                "counted": {e.name: e.n_images for e in experts},
                "scores": {name: label.scores.tolist() for name, label in fitted.labels_.items()},
                "warnings": [f"{w.category.__name__}: {w.message}" for w in caught]}


    if __name__ == "__main__":
        mode, cache_dir = sys.argv[1], sys.argv[2]
        leaves = sys.argv[3].split(",") if len(sys.argv) > 3 and sys.argv[3] else LEAVES
        if mode == "kill-before-pointer":
            kill_before_any_record_pointer()
        if mode.startswith("share"):  # start together: say ready, wait for the go file
            Path(cache_dir, f"ready-{os.getpid()}").touch()
            while not Path(cache_dir, "go").exists():
                time.sleep(0.01)
        experts = [Slow(e, 0.25 if mode.startswith("share") else 0.0) for e in make_experts()]
        experts = experts[:1] if mode in ("kill-before-pointer", "share-one") else experts
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fitted = labeler(cache_dir, make_sdag(leaves)).fit(ModelHub(experts))
        print(json.dumps(report(fitted, experts, caught)), flush=True)
''')


@pytest.fixture(scope="module")
def job_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("store_job") / "store_job.py"
    path.write_text(JOB)
    return path


@pytest.fixture(scope="module")
def job(job_path):
    spec = importlib.util.spec_from_file_location("store_job", job_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reference(job):
    """Scores of a run without any label directory."""
    labels = job.labeler(False).fit(ModelHub(job.make_experts())).labels_
    return {name: label.scores for name, label in labels.items()}


def assert_scores(labels, reference):
    assert sorted(labels) == sorted(reference)
    for name, label in labels.items():
        scores = label.scores if hasattr(label, "scores") else np.array(label)
        np.testing.assert_array_equal(scores, reference[name])


def child_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(skmll.__file__).resolve().parents[1]), env.get("PYTHONPATH")]))
    return env


def run_job(job_path, mode, cache_dir, leaves=(), prefix=(), check=True):
    process = subprocess.run([*prefix, sys.executable, str(job_path), mode, str(cache_dir),
                              ",".join(leaves)], env=child_env(), capture_output=True, text=True,
                             timeout=300)
    if check:
        assert process.returncode == 0, process.stderr
        return json.loads(process.stdout.splitlines()[-1])
    return process


def record_folder(cache_dir, key):
    """The folder holding the record of ``key``, wherever the layout puts it."""
    (json_path,) = (cache_dir / "labels").rglob(f"{key}.json")
    return json_path.parent


def images_of(sdag, leaves):
    return int(sum(sdag.n_images[sdag.node_index[leaf]] for leaf in leaves))


def copy_record(folder, source, target):
    """Copy every file of the record ``source`` over the names of the record ``target``."""
    for path in folder.glob(f"{target}.*"):
        path.unlink()
    for path in folder.glob(f"{source}.*"):
        shutil.copyfile(path, folder / path.name.replace(source, target, 1))


def test_record_copied_over_another_experts_is_refused_and_recomputed(tmp_path, job, reference):
    experts = job.make_experts()[:2]  # the same width: the copy fits every array shape
    job.labeler(tmp_path).fit(ModelHub(experts))
    source, target = (expert_fingerprint(e) for e in experts)
    copy_record(record_folder(tmp_path, source), source, target)

    counted = [CountingExpert(e) for e in experts]
    with pytest.warns(CorruptRecordWarning, match=f"{target} is unreadable"):
        labeler = job.labeler(tmp_path).fit(ModelHub(counted))
    assert [e.n_images for e in counted] == [0, int(job.make_sdag().n_images.sum())]
    assert_scores(labeler.labels_, {e.name: reference[e.name] for e in experts})


def test_text_embedding_record_copied_over_another_is_refused(tmp_path):
    class Hashing:
        """A fingerprinted text encoder from scikit-learn that counts its calls."""

        fingerprint = "hashing-16"

        def __init__(self):
            self.n_calls, self.vectorizer = 0, HashingVectorizer(n_features=16)

        def __call__(self, texts):
            self.n_calls += 1
            return self.vectorizer.transform(texts).toarray() + 0.01

    birds, trees = ["heron", "wren", "kestrel"], ["birch", "alder", "rowan"]
    encoder = Hashing()
    expected = embed_texts(encoder, trees, cache_dir=False)
    for texts in (birds, trees):
        embed_texts(encoder, texts, cache_dir=tmp_path)
    source, target = (hash_json([encoder.fingerprint, texts]) for texts in (birds, trees))
    copy_record(tmp_path / "text", source, target)

    encoder.n_calls = 0
    with pytest.warns(CorruptRecordWarning, match=f"{target} is unreadable"):
        embeddings = embed_texts(encoder, trees, cache_dir=tmp_path)
    np.testing.assert_array_equal(embeddings, expected)
    assert encoder.n_calls == 1


def rewrite_record(cache_dir, key, change):
    """Craft a record with valid checksums whose content ``change`` altered."""
    folder = record_folder(cache_dir, key)
    arrays, meta = load_record(folder, key)
    arrays = {name: array.copy() for name, array in arrays.items()}
    change(arrays, meta)
    save_record(folder, key, arrays, meta)


def test_crafted_rows_with_zero_counts_or_nan_sums_are_refused(tmp_path, job, reference):
    expert = job.make_experts()[2]
    sdag = job.make_sdag()
    job.labeler(tmp_path).fit(ModelHub([expert]))
    key = expert_fingerprint(expert)

    def craft(arrays, meta):
        arrays["counts"][0] = 0
        arrays["logit_sums"][1, 0] = np.nan

    rewrite_record(tmp_path, key, craft)
    counted = CountingExpert(expert)
    with pytest.warns(CorruptRecordWarning, match="2 row"):
        labeler = job.labeler(tmp_path).fit(ModelHub([counted]))
    node_keys = load_record(record_folder(tmp_path, key), key)[1]["node_keys"]
    leaves = [n for n in job.LEAVES if sdag.node_data_hash(n) in node_keys[:2]]
    assert counted.n_images == images_of(sdag, leaves)
    assert_scores(labeler.labels_, {expert.name: reference[expert.name]})


def test_record_of_another_width_is_recomputed(tmp_path, job, reference):
    expert = job.make_experts()[3]
    job.labeler(tmp_path).fit(ModelHub([expert]))

    def widen(arrays, meta):
        for name in ("logit_sums", "probability_sums"):
            arrays[name] = np.hstack([arrays[name], arrays[name][:, :1]])
        if "n_heads" in meta:
            meta["n_heads"] += 1

    rewrite_record(tmp_path, expert_fingerprint(expert), widen)
    counted = CountingExpert(expert)
    with pytest.warns(CorruptRecordWarning, match="heads"):
        labeler = job.labeler(tmp_path).fit(ModelHub([counted]))
    assert counted.n_images == int(job.make_sdag().n_images.sum())
    assert_scores(labeler.labels_, {expert.name: reference[expert.name]})


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_label_directory_follows_the_umask(tmp_path, job, umask):
    previous = os.umask(umask)
    try:
        job.labeler(tmp_path).fit(ModelHub(job.make_experts()[:2]))
    finally:
        os.umask(previous)
    labels = tmp_path / "labels"
    files = [p for p in labels.rglob("*") if p.is_file()]
    folders = [labels, *(p for p in labels.rglob("*") if p.is_dir())]
    # The layout file, two JSON + npz records, two lock files.
    assert len(files) == 7 and len(folders) == 3
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path
    for path in folders:
        assert stat.S_IMODE(path.stat().st_mode) == 0o777 & ~umask, path


def read_only_prefix(folder):
    """A command prefix that runs a command with ``folder`` mounted read-only, or None.

    A real read-only mount (a private mount namespace); chmod alone binds no root process.
    """
    probe = ["unshare", "-rm", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"',
             str(folder)]
    if shutil.which("unshare") and subprocess.run([*probe, "true"]).returncode == 0:
        return probe
    if os.geteuid() != 0:
        for path in [folder, *folder.rglob("*")]:
            path.chmod(path.stat().st_mode & ~0o222)
        return []
    return None


def test_read_only_directory_warns_and_returns_the_labels(tmp_path, job_path, job, reference):
    first = job.make_experts()[0]
    job.labeler(tmp_path).fit(ModelHub([first]))  # one record there before it turns read-only
    prefix = read_only_prefix(tmp_path)
    if prefix is None:
        pytest.skip("no way to make a read-only folder here (root without unshare)")
    result = run_job(job_path, "label", tmp_path, prefix=prefix)

    assert_scores(result["scores"], reference)
    sdag = job.make_sdag()
    assert result["counted"][first.name] == 0  # read from the read-only directory
    assert result["n_forward_images"] == 3 * int(sdag.n_images.sum())
    unstored = [w for w in result["warnings"] if w.startswith("CacheWriteWarning")]
    assert len(unstored) == 3 and all(str(tmp_path / "labels") in w for w in unstored)


def test_full_disk_warns_and_returns_the_labels(tmp_path, job, reference, monkeypatch):
    real_replace = os.replace

    def disk_full(source, target):  # stands in for the OS when the label directory is full
        if "labels" in str(target):
            raise OSError(28, "No space left on device", str(target))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", disk_full)
    experts = job.make_experts()[:2]
    with pytest.warns(CacheWriteWarning, match="could not store.*labels.*No space left") as caught:
        labeler = job.labeler(tmp_path).fit(ModelHub(experts))
    assert len([w for w in caught if w.category is CacheWriteWarning]) == 2
    assert_scores(labeler.labels_, {e.name: reference[e.name] for e in experts})
    assert not [p for p in (tmp_path / "labels").rglob("*") if p.suffix in (".tmp", ".npz")]

    monkeypatch.undo()  # space again: the next run stores them
    job.labeler(tmp_path).fit(ModelHub(experts))
    assert len(LabelStore.from_cache_dir(tmp_path).scan()) == 2


def test_kill_between_the_files_of_an_update_keeps_the_earlier_rows(tmp_path, job_path, job):
    expert = job.make_experts()[0]
    key = expert_fingerprint(expert)
    first_leaves = job.LEAVES[:3]
    job.labeler(tmp_path, job.make_sdag(first_leaves)).fit(ModelHub([expert]))
    folder = record_folder(tmp_path, key)
    before, meta = load_record(folder, key)

    process = run_job(job_path, "kill-before-pointer", tmp_path, job.LEAVES, check=False)
    assert process.returncode == -signal.SIGKILL

    with warnings.catch_warnings():
        warnings.simplefilter("error", CorruptRecordWarning)
        after, meta_after = load_record(folder, key)
        counted = CountingExpert(expert)
        job.labeler(tmp_path, job.make_sdag(first_leaves)).fit(ModelHub([counted]))
    assert meta_after == meta and len(meta["node_keys"]) == 3
    for name, array in before.items():
        np.testing.assert_array_equal(after[name], array)
    assert counted.n_calls == 0


def run_together(job_path, mode, cache_dir, leaves_per_process):
    """Start one job per entry of ``leaves_per_process``; they begin labelling together."""
    processes = [subprocess.Popen([sys.executable, str(job_path), mode, str(cache_dir),
                                   ",".join(leaves)], env=child_env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
                 for leaves in leaves_per_process]
    deadline = time.monotonic() + 120
    while len(list(cache_dir.glob("ready-*"))) < len(processes) and time.monotonic() < deadline:
        time.sleep(0.05)
    (cache_dir / "go").touch()
    outputs = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0] * len(processes), [e for _, e in outputs]
    return [json.loads(out.splitlines()[-1]) for out, _ in outputs]


def test_two_processes_share_the_work_and_tear_no_record(tmp_path, job_path, job, reference):
    results = run_together(job_path, "share", tmp_path, [job.LEAVES, job.LEAVES])

    per_expert = int(job.make_sdag().n_images.sum())
    done = [sum(r["counted"].values()) for r in results]
    assert [r["n_forward_images"] for r in results] == done
    assert sum(done) == per_expert * len(job.WIDTHS) and min(done) > 0  # each expert once
    for result in results:
        assert_scores(result["scores"], reference)
        assert result["warnings"] == []
    store = LabelStore.from_cache_dir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [info.status for info in store.verify()] == ["ok"] * len(job.WIDTHS)
    assert store.prune().items == ()


def test_two_processes_merge_their_nodes_into_one_record(tmp_path, job_path, job, reference):
    results = run_together(job_path, "share-one", tmp_path, [job.LEAVES[:3], job.LEAVES[3:]])
    assert [r["warnings"] for r in results] == [[], []]

    expert = job.make_experts()[0]  # both halves' rows are in its record: no forward pass
    counted = CountingExpert(expert)
    labeler = job.labeler(tmp_path).fit(ModelHub([counted]))
    assert counted.n_calls == 0
    assert_scores(labeler.labels_, {expert.name: reference[expert.name]})


def age(path, seconds=STALE_TEMP_SECONDS + 60):
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_scan_verify_and_prune(tmp_path, job):
    experts = job.make_experts()[:3]
    job.labeler(tmp_path).fit(ModelHub(experts))
    good, copied, third = (expert_fingerprint(e) for e in experts)
    store = LabelStore.from_cache_dir(tmp_path)
    copy_record(store.records, good, copied)
    stale_temp = store.records / f".{good}.json.0123.tmp"
    stale_temp.write_bytes(b"half")
    age(stale_temp)
    young_temp = store.records / f".{good}.npz.4567.tmp"
    young_temp.write_bytes(b"in progress")
    orphan = store.records / f"{good}.{'f' * 32}.npz"
    orphan.write_bytes(b"PK a payload whose pointer never came")
    age(orphan)
    legacy = store.root / f"{third}.json"  # where skmll 0.1 kept its records
    legacy.write_text("{}")

    scanned = {info.key: info for info in store.scan()}
    assert {k: i.status for k, i in scanned.items()} == {
        good: "ok", copied: "foreign", third: "ok"}
    assert scanned[good].expert == experts[0].name and scanned[good].n_nodes == 6
    assert scanned[good].n_heads == 3 and scanned[good].size > 0
    with pytest.warns(CorruptRecordWarning, match=f"{copied} is foreign"):
        store.verify()

    plan = store.prune()
    planned = {path.name for path, _ in plan.items}
    copied_files = {p.name for p in store.records.glob(f"{copied}.*")}
    assert planned == copied_files | {stale_temp.name, orphan.name, legacy.name}
    assert not plan.executed and orphan.exists() and plan.size > 0

    locks = sorted(store.locks.iterdir())
    assert store.prune(dry_run=False).executed
    assert not any(path.exists() for path, _ in plan.items)
    assert young_temp.exists() and sorted(store.locks.iterdir()) == locks
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert {i.key: i.status for i in LabelStore(store.root).verify()} == {
            good: "ok", third: "ok"}


def test_opening_the_store_removes_nothing_and_a_write_sweeps(tmp_path, job):
    records = tmp_path / "labels" / "v1"
    records.mkdir(parents=True)
    stale, young = records / ".k.npz.aa.tmp", records / ".k.json.bb.tmp"
    for path in (stale, young):
        path.write_bytes(b"partial")
    age(stale)
    store = LabelStore(tmp_path / "labels")
    store.scan(), store.verify()
    assert stale.exists() and young.exists()   # readers write nothing
    job.labeler(tmp_path).fit(ModelHub(job.make_experts()[:1]))
    assert not stale.exists() and young.exists()


@pytest.mark.parametrize("linked", ["labels", "labels/v1"])
def test_no_sweep_or_prune_through_a_symbolic_link(tmp_path, job, linked):
    """A label folder that is a symlink to a folder of the user's files: labelling into it and
    pruning it delete none of them, however old and record-like their names."""
    photos = tmp_path / "photos"
    photos.mkdir()
    theirs = [photos / "holiday.photos.npz", photos / ".session.tmp", photos / "notes.json"]
    for path in theirs:
        path.write_bytes(b"mine")
        age(path)
    link = tmp_path / "dir" / linked
    link.parent.mkdir(parents=True)
    link.symlink_to(photos, target_is_directory=True)
    job.labeler(tmp_path / "dir").fit(ModelHub(job.make_experts()[:1]))
    store = LabelStore(tmp_path / "dir" / "labels")
    with pytest.warns(UserWarning, match="symbolic link.*nothing is pruned"):
        assert store.prune(dry_run=False).items == ()
    assert all(path.read_bytes() == b"mine" for path in theirs)


def _crafted_record(store, key, payload, **meta):
    from ..utils._crafted import replace_payload
    replace_payload(store.records, key, payload, **meta)


@pytest.mark.parametrize("craft, reason", [
    # 0.5 MB on disk that inflates to 512 MiB, its shapes consistent with its metadata
    (lambda: ({"node_keys": [f"n{i}" for i in range(2**12)], "n_heads": 2**14},
              [("stored", "counts", (2**12,)), ("bomb", "logit_sums", (2**12, 2**14)),
               ("bomb", "probability_sums", (2**12, 2**14))]), "is compressed"),
    # a few hundred bytes that declare 10^13 elements, as the metadata does
    (lambda: ({"node_keys": ["n0"], "n_heads": 10**13},
              [("declared", "logit_sums", (1, 10**13)), ("declared", "counts", (1,)),
               ("declared", "probability_sums", (1, 10**13))]), "but the archive holds"),
])
def test_crafted_records_are_reported_corrupt_by_verify_and_prune(tmp_path, job, craft, reason):
    from ..utils._crafted import bomb_member, declared_only_member, stored_member, zip_bytes

    expert = job.make_experts()[0]
    job.labeler(tmp_path).fit(ModelHub([expert]))
    key = expert_fingerprint(expert)
    store = LabelStore.from_cache_dir(tmp_path)
    meta, members = craft()
    built = {"bomb": bomb_member, "declared": declared_only_member,
             "stored": lambda name, shape: stored_member(name, np.ones(shape, np.int64))}
    payload = zip_bytes([built[kind](name, shape) for kind, name, shape in members])
    _crafted_record(store, key, payload, **meta)
    with pytest.warns(CorruptRecordWarning, match=reason):
        (info,) = store.verify()
    assert info.status == "corrupt"
    plan = store.prune(dry_run=False)
    assert {path.name for path, _ in plan.items} >= {f"{key}.json"}
    assert not (store.records / f"{key}.json").exists()


def test_directory_of_a_newer_layout_is_refused(tmp_path, job):
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "skmll-labels.json").write_text(json.dumps({"format": "skmll-labels",
                                                          "version": 99}))
    with pytest.raises(ValueError, match="layout version 99.*newer skmll"):
        job.labeler(tmp_path).fit(ModelHub(job.make_experts()[:1]))


def test_waiting_for_a_lock_logs_and_gives_up_with_a_warning(tmp_path, job, caplog,
                                                            monkeypatch):
    monkeypatch.setattr(label_store_module, "LOCK_LOG_INTERVAL", 0.1)
    expert = job.make_experts()[0]
    key = expert_fingerprint(expert)
    holder = LabelStore(tmp_path)
    waiter = LabelStore(tmp_path, lock_timeout=0.5)
    rows = {"node": (np.zeros(3), np.zeros(3), 1)}
    assert holder.acquire(key, blocking=False)
    assert not waiter.acquire(key, blocking=False)
    with caplog.at_level(logging.INFO, logger="skmll.labelling._store"):
        with pytest.warns(CacheWriteWarning, match=f"{key}.json"):
            assert not waiter.merge(key, rows, expert=expert)
    assert "waiting for" in caplog.text and f"{key}.lock" in caplog.text
    holder.release(key)
    assert waiter.merge(key, rows, expert=expert)
    assert set(holder.load(key, n_heads=3)) == {"node"}
