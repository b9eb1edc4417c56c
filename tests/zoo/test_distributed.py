"""A zoo built and searched in shards on a local Dask (and Ray) cluster equals one process."""

import numpy as np
import pytest
from joblib import parallel_config

from skmll.selection import TaskMatch
from skmll.zoo import ZooStore, build_zoo_sharded, search_zoo, search_zoo_sharded

from ._zoos import random_expert

distributed = pytest.importorskip("distributed")
N_NODES = 45


def batches(seed):
    """Five batches of experts (heads 2 to 120), each to become one segment."""
    rng = np.random.default_rng(seed)
    return [[(f"shard{b}-net{i}", random_expert(rng, N_NODES, int(rng.choice([2, 6, 15, 120]))))
             for i in range(int(rng.integers(15, 30)))] for b in range(5)]


def tasks(seed):
    rng = np.random.default_rng(seed)
    for n_classes in (2, 5, 11):
        nodes = rng.choice(N_NODES, n_classes, replace=False)
        yield TaskMatch([f"kind {n}" for n in nodes], nodes, np.ones(n_classes),
                        [f"spot-{n}" for n in nodes]), int(rng.integers(1, 4))


def assert_same(found, expected):
    assert found.names == expected.names
    for name, served in expected.experts.items():
        assert [e for e, _, _ in found.experts[name]] == [e for e, _, _ in served]
        for (_, loss, weights), (_, expected_loss, expected_weights) in zip(
                found.experts[name], served):
            assert loss == pytest.approx(expected_loss, rel=1e-4)
            assert weights.shape == expected_weights.shape


def test_dask_builds_and_searches_as_one_process(client, tmp_path):
    serial = ZooStore.create(tmp_path / "serial", [f"spot-{i}" for i in range(N_NODES)])
    for batch in batches(0):
        serial.append(batch)
    sharded = ZooStore.create(tmp_path / "dask", serial.node_ids)
    with distributed.get_task_stream(client) as stream, parallel_config("dask"):
        build_zoo_sharded(sharded, batches(0))
        results = [(search_zoo_sharded(sharded, task, k=k, n_shards=3), task, k)
                   for task, k in tasks(1)]
    workers = {task["worker"] for task in stream.data}
    assert workers == set(client.scheduler_info()["workers"])   # both workers took part
    assert sharded.names == serial.names                         # batch order, not finish order
    assert [s.n_experts for s in sharded.segments] == [s.n_experts for s in serial.segments]
    for found, task, k in results:
        assert_same(found, search_zoo(serial, task, k=k))
        assert 0 < found.n_read <= serial.n_experts


def test_shards_in_processes_equal_one_search(tmp_path):
    zoo = ZooStore.create(tmp_path, [f"spot-{i}" for i in range(N_NODES)])
    build_zoo_sharded(zoo, batches(2), n_jobs=2)
    for task, k in tasks(3):
        assert_same(search_zoo_sharded(zoo, task, k=k, n_jobs=2), search_zoo(zoo, task, k=k))


@pytest.mark.slow
def test_ray_searches_as_one_process(tmp_path):
    ray = pytest.importorskip("ray")
    from ray.util.joblib import register_ray

    zoo = ZooStore.create(tmp_path, [f"spot-{i}" for i in range(N_NODES)])
    for batch in batches(4):
        zoo.append(batch)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        register_ray()
        with parallel_config("ray"):
            found = [(search_zoo_sharded(zoo, task, k=k), task, k) for task, k in tasks(5)]
    finally:
        ray.shutdown()
    for selection, task, k in found:
        assert_same(selection, search_zoo(zoo, task, k=k))
