"""Labelling on a Dask cluster through joblib gives exactly the serial labels."""

import numpy as np
import pytest
from joblib import parallel_config

from skmll import ModelHub, ModelLabeler, SemanticDAG

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            yield client


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
