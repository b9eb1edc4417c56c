"""benchmarks/bench_zoo_scale.py: its generative model and its quick mode, end to end."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_zoo_scale.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_zoo_scale", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_heads_lift_their_nodes_and_those_nodes_ancestors(bench):
    # a chain 0 <- 1 <- 2 <- 3 (3's parent is 2, ...); only node 3 has images
    graph = bench.NodeGraph(list("abcd"), [[], [0], [1], [2]], [3])
    assert graph.lifted(np.array([3, 1]))[1].tolist() == [2, 1, 0, 0]
    model = {"bias": 0.0, "noise": 0.01, "strength": 8.0, "extra_nodes": 0.0}
    rows = bench.expert_rows(np.random.default_rng(1), 7, model, graph)
    assert np.allclose(rows.sum(axis=1), 1, atol=1e-5)
    # every head responds at node 3; the lift halves per edge up, so the rows flatten upwards
    assert np.all(np.diff(rows.max(axis=1)) > 0)


def test_fit_recovers_the_medians_of_labels_drawn_from_the_model(bench):
    truth = {"bias": 1.0, "noise": 1.0, "strength": 0.0, "extra_nodes": 0.0}
    nodes = bench.flat_graph(60)
    labels = {f"m{i}": bench.expert_rows(np.random.default_rng(i), 10, truth, nodes)
              for i in range(9)}
    _, groups = bench.measure_structure(labels)
    model = bench.fit_model(groups["specialist"])
    # one simulated expert per grid point: a rough estimate, within a grid step or two
    assert abs(model["noise"] - truth["noise"]) <= 0.2 and abs(model["bias"] - 1.0) <= 0.5
    drawn = [bench.expert_statistics(bench.expert_rows(np.random.default_rng(50 + i), 10,
                                                       dict(model, strength=0.0), nodes))
             for i in range(9)]
    for statistic in ("top_median", "d_median"):
        found = np.median([stats[statistic] for stats in drawn])
        assert abs(found - groups["specialist"][statistic]) < 0.05, statistic


@pytest.mark.slow
def test_quick_mode_searches_as_exhaustive_selection_does(bench, tmp_path):
    summary = bench.main(["--quick", "--root", str(tmp_path / "zoos"),
                          "--out", str(tmp_path / "out")])
    rows = [row for size in summary.values() for row in size]
    assert {row["experts"] for row in rows} == {30, 90}
    assert all(row["status"] == "ok" for row in rows)
    assert all(row["same_as_search"] is True for row in rows if row["mode"] != "search")
    assert "| 12 | 0 | search | ok |" in (tmp_path / "out" / "scale.md").read_text()
