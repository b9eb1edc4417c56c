"""benchmarks/bench_gpu.py runs in its quick mode on the CPU (the GPU run is the same code)."""

import importlib.util
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_gpu.py"


def test_quick_mode_checks_both_sides_and_reports_ratios(capsys):
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    ratios = bench.main(["--quick", "--device", "cpu", "--repeats", "1", "--threads", "1"])
    assert set(ratios) == {"labelling", "labelling - FLOP count", "predict"}
    assert all(np.isfinite(r) and r > 0 for r in ratios.values())
    out = capsys.readouterr().out
    assert "device cpu" in out and "ratio" in out
