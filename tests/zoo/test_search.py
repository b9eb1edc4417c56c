"""Zoo search equals exhaustive selection, reads fewer experts, and says what is wrong."""

from types import SimpleNamespace

import numpy as np
import pytest

from skmll.selection import TaskMatch, select_experts
from skmll.zoo import ZooStore, search_zoo

from ._zoos import build_zoo, random_expert


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    return build_zoo(tmp_path_factory.mktemp("zoo"), seed=3)


def task_on(zoo, nodes):
    names = [f"class {n}" for n in nodes]
    return TaskMatch(names, np.asarray(nodes), np.ones(len(nodes)),
                     [zoo.node_ids[n] for n in nodes])


def exhaustive(zoo, task, **kwargs):
    """select_experts on every expert's stored rows, restricted to the task's nodes."""
    rows = np.array([zoo.node_index[n] for n in task.node_ids])
    problems = zoo.problems(rows, np.arange(zoo.n_experts))
    labels = {name: SimpleNamespace(probabilities=P.T) for name, P in zip(zoo.names, problems)}
    local = TaskMatch(task.classes, np.arange(len(rows)), task.similarity, task.node_ids)
    return select_experts(local, labels, **kwargs)


def assert_same_selection(found, expected):
    for name in expected.experts:
        assert [e for e, _, _ in found.experts[name]] == [e for e, _, _ in expected.experts[name]]
        np.testing.assert_allclose([loss for _, loss, _ in found.experts[name]],
                                   [loss for _, loss, _ in expected.experts[name]], rtol=1e-4)


@pytest.mark.parametrize("seed", range(6))
def test_search_equals_exhaustive_selection(zoo, seed):
    rng = np.random.default_rng(100 + seed)
    n_classes = [1, 2, 4, 8, 13, 25][seed]
    k = int(rng.integers(1, 4))
    task = task_on(zoo, rng.choice(len(zoo.node_ids), n_classes, replace=False))
    assert_same_selection(search_zoo(zoo, task, k=k), exhaustive(zoo, task, k=k))


def test_search_with_beta_equals_exhaustive_selection(zoo):
    task = task_on(zoo, [3, 17, 29, 41, 55])
    found, expected = search_zoo(zoo, task, k=3, beta=0.5), exhaustive(zoo, task, k=3, beta=0.5)
    assert_same_selection(found, expected)
    assert all(loss <= 0.5 for served in found.experts.values() for _, loss, _ in served)


def test_search_skips_experts_that_cannot_serve(tmp_path):
    # 300 experts that answer every node alike, 6 that know the task's nodes
    rng = np.random.default_rng(7)
    n_nodes = 30
    zoo = ZooStore.create(tmp_path, [f"place-{i}" for i in range(n_nodes)])
    vague = [(f"vague-{i}", np.tile(rng.dirichlet(np.ones(5)), (n_nodes, 1))
              * rng.uniform(0.97, 1.03, (n_nodes, 5))) for i in range(300)]
    zoo.append(vague[:150])
    zoo.append([(f"sharp-{i}", random_expert(rng, n_nodes, 8)) for i in range(6)])
    zoo.append(vague[150:])
    task = task_on(zoo, [0, 4, 9])
    found = search_zoo(zoo, task, k=2, first=8)
    assert np.isfinite(found.losses).any(axis=1).sum() < 60 and found.n_read < 150
    assert set(found.used) <= {f"sharp-{i}" for i in range(6)}
    assert_same_selection(found, exhaustive(zoo, task, k=2))


def test_search_sees_appended_experts_after_refresh(tmp_path):
    zoo = build_zoo(tmp_path, seed=5, segment_sizes=(20,))
    task = task_on(zoo, [1, 2, 3])
    before = search_zoo(zoo, task, k=1)
    writer = ZooStore(tmp_path)
    perfect = np.full((60, 4), 1e-6)
    perfect[[1, 2, 3], [0, 1, 2]] = 1.0
    writer.append([("perfect", perfect / perfect.sum(axis=1, keepdims=True))])
    assert "perfect" not in before.used
    assert search_zoo(zoo, task, k=1).used == before.used    # the reader's snapshot
    assert search_zoo(zoo.refresh(), task, k=1).used == ["perfect"]


def test_task_on_another_sdag_is_refused(zoo):
    task = TaskMatch(["x", "y"], np.array([0, 1]), np.ones(2), ["site-1", "elsewhere.n.01"])
    with pytest.raises(ValueError, match="elsewhere.n.01"):
        search_zoo(zoo, task)
    with pytest.raises(ValueError, match="k must be"):
        search_zoo(zoo, task_on(zoo, [1, 2]), k=0)


def test_unmatched_classes_get_no_experts(zoo):
    task = TaskMatch(["a", "b", "c"], np.array([4, -1, 9]), np.array([1.0, np.nan, 1.0]),
                     ["site-4", None, "site-9"])
    found = search_zoo(zoo, task, k=2)
    assert found.experts["b"] == [] and len(found.experts["a"]) == 2
    assert found.losses.shape == (zoo.n_experts, 2)


def test_searching_a_zoo_imports_no_torch():
    # a search process holds the zoo's rows, not a deep-learning framework (peak memory)
    import subprocess
    import sys

    code = "import sys, skmll.zoo; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"
