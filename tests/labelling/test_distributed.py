"""Labelling on a Dask cluster through joblib gives exactly the serial labels."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from joblib import parallel_config
from PIL import Image
from safetensors.torch import save_file

from skmll import ModelHub, ModelLabeler, SemanticDAG
from skmll.cli import main
from skmll.hub import LazyExpert
from skmll.labelling import load_label_dir

from ..hub import _factories

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def digit_tree(digit_splits):
    return SemanticDAG(["digit"] + list(digit_splits.reference),
                       edges=[("digit", node) for node in digit_splits.reference],
                       data=digit_splits.reference)


@pytest.mark.parametrize("scatter", [False, True], ids=["plain", "scatter"])
def test_dask_labels_equal_serial(client, digit_tree, digit_experts, scatter):
    hub = ModelHub(digit_experts)
    params = dict(images_per_shard=64, cache_dir=False, verbose=0)
    serial = ModelLabeler(digit_tree, **params).fit(hub)

    # scatter= ships the SDAG and the experts to the workers once instead of with every task.
    backend = dict(scatter=[digit_tree, *hub]) if scatter else {}
    with distributed.get_task_stream(client) as tasks, parallel_config("dask", **backend):
        on_cluster = ModelLabeler(digit_tree, **params).fit(hub)

    # The (expert, node shard) tasks ran on both worker processes, not here.
    workers = {task["worker"] for task in tasks.data}
    assert len(tasks.data) > 1 and workers == set(client.scheduler_info()["workers"])
    assert on_cluster.hub_.names == hub.names
    for name in hub.names:
        np.testing.assert_array_equal(on_cluster.labels_[name].scores, serial.labels_[name].scores)
        np.testing.assert_array_equal(on_cluster.labels_[name].probabilities,
                                      serial.labels_[name].probabilities)
        np.testing.assert_array_equal(on_cluster.node_statistics_[name].logit_sums,
                                      serial.node_statistics_[name].logit_sums)


def _count_built():
    return len(_factories.BUILT)


@pytest.fixture
def weights_zoo(tmp_path):
    """Two MLP weights files (64 x 256 hidden units: 70 kB each) on a file system all workers
    share, and a hub file of specifications naming them."""
    for seed, n_outputs in ((0, 4), (1, 6)):
        torch.manual_seed(seed)
        module = _factories.mlp(n_outputs, hidden=256)
        save_file(dict(module.state_dict()), tmp_path / f"mlp-{seed}.safetensors")
    hub = ModelHub([LazyExpert("torch:tests.hub._factories:mlp", name=f"mlp-{seed}",
                               weights=str(tmp_path / f"mlp-{seed}.safetensors"),
                               factory_kwargs={"n_outputs": n_outputs, "hidden": 256},
                               input_size=[8, 8], channels=1)
                    for seed, n_outputs in ((0, 4), (1, 6))])
    hub.to_toml(tmp_path / "hub.toml", declare_missing=True)
    return tmp_path / "hub.toml"


def test_workers_build_a_specification_hub_from_its_sources(client, digit_tree, weights_zoo):
    params = dict(images_per_shard=64, cache_dir=False, verbose=0)
    serial = ModelLabeler(digit_tree, **params).fit(ModelHub.from_toml(weights_zoo))
    specs = ModelHub.from_toml(weights_zoo)
    # what a task carries: the specification, not the 70 kB of weights
    assert all(len(pickle.dumps(expert)) < 2000 for expert in specs)
    assert len(pickle.dumps(specs[0].load())) > 60_000
    specs[0].release()

    built_here, built_there = _count_built(), sum(client.run(_count_built).values())
    with distributed.get_task_stream(client) as tasks, parallel_config("dask"):
        on_cluster = ModelLabeler(digit_tree, **params).fit(specs)
    assert _count_built() == built_here                        # no model built in this process
    assert sum(client.run(_count_built).values()) > built_there   # the workers built them
    assert {task["worker"] for task in tasks.data} == set(client.scheduler_info()["workers"])
    for name in specs.names:
        np.testing.assert_array_equal(on_cluster.labels_[name].scores, serial.labels_[name].scores)
        np.testing.assert_array_equal(on_cluster.node_statistics_[name].probability_sums,
                                      serial.node_statistics_[name].probability_sums)


def test_the_command_line_labels_through_a_scheduler(client, weights_zoo, tmp_path):
    images = tmp_path / "images"
    rng = np.random.default_rng(2)
    for synset in ("three.n.01", "seven.n.01"):
        (images / synset).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(
                images / synset / f"{i}.png")
    common = ["label", str(weights_zoo), "--images", str(images), "--image-size", "8", "8", "-q"]
    assert main([*common, "--labels", str(tmp_path / "serial")]) == 0
    with distributed.get_task_stream(client) as tasks:
        assert main([*common, "--labels", str(tmp_path / "cluster"),
                     "--scheduler", client.scheduler.address]) == 0
    assert tasks.data                                           # the labelling ran there
    serial, cluster = (load_label_dir(tmp_path / name) for name in ("serial", "cluster"))
    for name in serial.hub_.names:
        np.testing.assert_array_equal(cluster.labels_[name].scores, serial.labels_[name].scores)


@pytest.fixture
def ray_backend():
    """A local Ray instance (two worker processes) behind joblib's Ray backend."""
    ray = pytest.importorskip("ray")
    from ray.util.joblib import register_ray

    root = str(Path(__file__).resolve().parents[2])   # workers import tests.hub._factories
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": root}})
    register_ray()
    yield
    ray.shutdown()


def test_ray_workers_label_a_specification_hub(ray_backend, digit_tree, weights_zoo):
    """The same map over (expert, node shard) through joblib's Ray backend: identical labels."""
    params = dict(images_per_shard=64, cache_dir=False, verbose=0)
    serial = ModelLabeler(digit_tree, **params).fit(ModelHub.from_toml(weights_zoo))
    built_here = _count_built()
    with parallel_config("ray", n_jobs=2):
        on_ray = ModelLabeler(digit_tree, **params).fit(ModelHub.from_toml(weights_zoo))
    assert _count_built() == built_here                        # the Ray workers built them
    for name in serial.hub_.names:
        np.testing.assert_array_equal(on_ray.labels_[name].scores, serial.labels_[name].scores)
