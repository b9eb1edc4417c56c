"""CHCO solver benchmark: skmll's batched solver against the paper's per-head loop.

The loop (for each head in turn: the gradient of its row from Eq. 11, a step, the projection
of the row, the rank-1 update of A) is written efficiently: only the columns of A (and of the
gradient weights) that a row changes are updated, the step is the inverse of the row's
curvature, and it stops when a sweep improves the objective by less than 1e-10. It runs twice:
in Python (``per_head_loop``, interpreter-bound) and compiled with numba (``compiled_loop``,
the same steps in the same order). The compiled loop also runs with chco's stopping rule (the
relative Frank-Wolfe duality gap at most ``tol``), and every speed-up of ``chco`` and
``chco_many`` is given against it at the same ``tol``: the fastest loop, certified alike.

1. one model with 1,000 heads and 100 classes, chco at tol 1e-9 (the default) and 1e-6;
2. 50 models of 10-1,000 heads x 10 classes: the loops and ``chco`` one model at a time, and
   ``chco_many`` on all of them at once;
3. ``chco_many`` on a hub of synthetic models (10-1,000 heads, 10 classes): at the default
   ``tol`` and at the loose ``tol=1e-4`` used to screen a hub before the contenders are
   solved tightly, against the compiled loop at the same tol (one run each);
4. every expert of the offline world's hub (16 models, labels of the ten Fashion-MNIST
   classes): the loops against ``chco_many``, and ``MLLZeroShotClassifier.fit`` for that task
   (matching + CHCO + selection; median of 5 after a warm-up). Labels the hub first when its
   labels are not cached (minutes).

Parts 1, 2 and 4 time each solver ``--repeats`` times, interleaved, and print the median wall
time. Objectives must agree with the Python loop's to 1e-6 (relative); the table says where
they do not. Needs numba (the ``bench`` extra).
Usage: python benchmarks/bench_chco.py [--hub-models 10000] [--seed 0] [--repeats 3]
                                       [--skip-offline]
"""

import argparse
import time
from functools import partial
import warnings

import numpy as np
from numba import njit

from skmll.selection import chco, chco_loss, chco_many, head_class_probabilities


def _project_row(y):
    """Euclidean projection onto {x >= 0, sum(x) <= 1} (sort-based, Duchi et al. 2008)."""
    clipped = np.maximum(y, 0.0)
    if clipped.sum() <= 1.0:
        return clipped
    u = np.sort(y)[::-1]
    cumulative = np.cumsum(u) - 1.0
    rho = np.nonzero(u - cumulative / np.arange(1, len(y) + 1) > 0)[0][-1]
    return np.maximum(y - cumulative[rho] / (rho + 1), 0.0)


def _column_terms(A_columns, columns, n_classes):
    """L_c (Eq. 9) of the given columns of A."""
    k = np.arange(len(columns))
    diagonal = A_columns[columns, k]
    if n_classes == 1:
        return -np.log(diagonal)
    with np.errstate(divide="ignore", invalid="ignore"):
        rest = np.log1p(-A_columns)
    rest[columns, k] = 0.0
    return -np.log(diagonal) - rest.sum(axis=0) / (n_classes - 1)


def _weights(A_columns, columns, n_classes):
    """Eq. 11's W and the second derivatives for the given columns of A."""
    k = np.arange(len(columns))
    inverse = 1.0 / (1.0 - A_columns)
    W = inverse / max(n_classes - 1, 1)
    D = W * inverse
    diagonal = A_columns[columns, k]
    W[columns, k], D[columns, k] = -1.0 / diagonal, 1.0 / diagonal**2
    return W, D


def per_head_loop(P, tol=1e-10, max_sweeps=10000):
    """The paper's CHCO loop, efficient; returns (X, objective, sweeps)."""
    n_heads, n_classes = P.shape
    X = np.full(P.shape, 1.0 / n_classes)
    A = P.T @ X
    every = np.arange(n_classes)
    W, D = _weights(A, every, n_classes)
    losses = _column_terms(A, every, n_classes)
    squared = P * P
    objective = losses.sum()
    for sweep in range(1, max_sweeps + 1):
        start = objective
        for h in range(n_heads):
            gradient = P[h] @ W
            step = 1.0 / (squared[h] @ D).max()
            for _ in range(60):  # halve the step until the row's columns improve
                dx = _project_row(X[h] - step * gradient) - X[h]
                columns = np.flatnonzero(dx)
                if not len(columns):
                    break
                A_columns = A[:, columns] + np.outer(P[h], dx[columns])
                new = _column_terms(A_columns, columns, n_classes)
                if np.all(np.isfinite(new)) and new.sum() <= losses[columns].sum():
                    X[h, columns] += dx[columns]
                    A[:, columns], losses[columns] = A_columns, new
                    W[:, columns], D[:, columns] = _weights(A_columns, columns, n_classes)
                    break
                step /= 2
        objective = losses.sum()
        if start - objective <= tol * abs(objective):
            break
    return X, chco_loss(P, X).sum(), sweep


@njit(error_model="numpy")
def _project_into(y, out):
    """_project_row, compiled: the projection of ``y`` written into ``out``."""
    total = 0.0
    for j in range(len(y)):
        out[j] = max(y[j], 0.0)
        total += out[j]
    if total <= 1.0:
        return
    u = np.sort(y)[::-1]
    cumulative, shift = 0.0, 0.0
    for j in range(len(u)):
        cumulative += u[j]
        if u[j] - (cumulative - 1.0) / (j + 1) > 0:
            shift = (cumulative - 1.0) / (j + 1)
    for j in range(len(y)):
        out[j] = max(y[j] - shift, 0.0)


@njit(error_model="numpy")
def _column_term(a, c):
    """_column_terms of one column ``a`` of A (class ``c``)."""
    n_classes = len(a)
    rest = 0.0
    for i in range(n_classes):
        if i != c:
            rest += np.log1p(-a[i])
    return -np.log(a[c]) - (rest / (n_classes - 1) if n_classes > 1 else 0.0)


@njit(error_model="numpy")
def _set_weights(a, c, W, D):
    """_weights of one column ``a`` of A, written into column ``c`` of W and D."""
    n_classes = len(a)
    for i in range(n_classes):
        inverse = 1.0 / (1.0 - a[i])
        W[i, c] = inverse / max(n_classes - 1, 1)
        D[i, c] = W[i, c] * inverse
    W[c, c], D[c, c] = -1.0 / a[c], 1.0 / a[c] ** 2


@njit(error_model="numpy")
def _relative_gap(P, X, W, objective):
    """duality_gap from the loop's own W, relative to max(1, |objective|)."""
    gap, gradient = 0.0, np.empty(P.shape[1])
    for h in range(P.shape[0]):
        gradient[:] = 0.0
        for i in range(P.shape[1]):
            for c in range(P.shape[1]):
                gradient[c] += P[h, i] * W[i, c]
        gap += (gradient * X[h]).sum() - min(gradient.min(), 0.0)
    return gap / max(1.0, abs(objective))

@njit(error_model="numpy")
def _compiled_sweeps(P, tol, gap_tol, max_sweeps):
    """per_head_loop's sweeps, compiled; returns (X, sweeps). ``gap_tol > 0`` replaces the
    stopping rule by chco's: relative gap at most ``gap_tol``, or a sweep that gains nothing."""
    n_heads, n_classes = P.shape
    X = np.full(P.shape, 1.0 / n_classes)
    A = P.T @ X
    W, D = np.empty_like(A), np.empty_like(A)
    losses = np.empty(n_classes)
    for c in range(n_classes):
        losses[c] = _column_term(A[:, c], c)
        _set_weights(A[:, c], c, W, D)
    gradient, curvature = np.empty(n_classes), np.empty(n_classes)
    target, projected = np.empty(n_classes), np.empty(n_classes)
    columns, new = np.empty(n_classes, np.int64), np.empty(n_classes)
    trial = np.empty((n_classes, n_classes))  # row k: the new column A[:, columns[k]]
    objective = losses.sum()
    for sweep in range(1, max_sweeps + 1):
        start = objective
        for h in range(n_heads):
            gradient[:], curvature[:] = 0.0, 0.0
            for i in range(n_classes):  # row by row: W and D are read in memory order
                for c in range(n_classes):
                    gradient[c] += P[h, i] * W[i, c]
                    curvature[c] += P[h, i] * P[h, i] * D[i, c]
            step = 1.0 / curvature.max()
            for _ in range(60):  # halve the step until the row's columns improve
                for c in range(n_classes):
                    target[c] = X[h, c] - step * gradient[c]
                _project_into(target, projected)
                n_moved = 0
                for c in range(n_classes):
                    if projected[c] - X[h, c] != 0.0:
                        columns[n_moved] = c
                        n_moved += 1
                if n_moved == 0:
                    break
                new_total, old_total = 0.0, 0.0
                for k in range(n_moved):
                    c = columns[k]
                    for i in range(n_classes):
                        trial[k, i] = A[i, c] + P[h, i] * (projected[c] - X[h, c])
                    new[k] = _column_term(trial[k], c)
                    new_total += new[k]
                    old_total += losses[c]
                if np.isfinite(new_total) and new_total <= old_total:
                    for k in range(n_moved):
                        c = columns[k]
                        X[h, c] += projected[c] - X[h, c]
                        A[:, c], losses[c] = trial[k], new[k]
                        _set_weights(A[:, c], c, W, D)
                    break
                step /= 2
        objective = losses.sum()
        if gap_tol > 0.0:
            if start - objective <= 0.0 or _relative_gap(P, X, W, objective) <= gap_tol:
                break
        elif start - objective <= tol * abs(objective):
            break
    return X, sweep


def compiled_loop(P, tol=1e-10, gap_tol=0.0, max_sweeps=10000):
    """per_head_loop compiled with numba: the same steps, the same stopping rule; returns
    (X, objective, sweeps). With ``gap_tol > 0`` it stops as chco does instead: when the
    relative Frank-Wolfe gap is at most ``gap_tol`` (or a sweep gains nothing), so the two
    are timed at the same certified tolerance."""
    P = np.ascontiguousarray(P, dtype=np.float64)
    X, sweeps = _compiled_sweeps(P, tol, gap_tol, max_sweeps)
    return X, chco_loss(P, X).sum(), sweeps


def realistic_scores(rng, n_heads, n_classes):
    """Mean logits of a model that knows the classes: head bias and noise, plus one to three
    informative heads per class."""
    scores = rng.normal(0, 1, (n_heads, 1)) + rng.normal(0, 1, (n_heads, n_classes))
    for c in range(n_classes):
        heads = rng.choice(n_heads, size=min(n_heads, int(rng.integers(1, 4))), replace=False)
        scores[heads, c] += rng.uniform(3, 8, len(heads))
    return scores


def hub_scores(rng, n_heads, n_classes):
    """A hub expert mostly unrelated to the task (the label of bench_hub_scale.py): noise, and
    three informative heads that each respond to two of the classes."""
    scores = rng.normal(0, 1, (n_heads, n_classes))
    for head in rng.choice(n_heads, size=min(n_heads, 3), replace=False):
        scores[head, rng.choice(n_classes, size=2, replace=False)] += rng.uniform(2, 6)
    return scores


def _timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def race(solvers, repeats):
    """Run every solver ``repeats`` times, interleaved so that load changes hit all alike.

    ``solvers`` maps a name to a function of no arguments; returns ({name: last result},
    {name: median wall seconds}).
    """
    results, seconds = {}, {name: [] for name in solvers}
    for _ in range(repeats):
        for name, solver in solvers.items():
            results[name], elapsed = _timed(solver)
            seconds[name].append(elapsed)
    return results, {name: float(np.median(values)) for name, values in seconds.items()}


def _relative(value, reference):
    return (value - reference) / max(abs(reference), 1e-300)


# Each tolerance chco runs at, and the numba loop stopped by the same rule: the two solvers
# whose times the speed-ups compare.
TOLERANCES = (1e-9, 1e-6)
SOLVER_HEADER = (f"{'solver':<22} {'stops at':<18} {'seconds':>8} {'rel diff':>9} "
                 f"{'vs Python loop':>14} {'vs fastest loop, same tol':>25}")


def loop_solvers(P_list):
    """The Python loop, the numba loop with its stopping rule and the numba loop at each of
    TOLERANCES; name -> (stopping rule, function returning the objectives)."""
    solvers = {
        "loop, Python": ("gain < 1e-10", lambda: [per_head_loop(P)[1] for P in P_list]),
        "loop, numba": ("gain < 1e-10", lambda: [compiled_loop(P)[1] for P in P_list])}
    for tol in TOLERANCES:
        solvers[f"loop, numba {tol:.0e}"] = (
            f"gap <= {tol:.0e}", lambda tol=tol: [compiled_loop(P, gap_tol=tol)[1]
                                                  for P in P_list])
    return solvers


def print_race(solvers, repeats, label=""):
    """Time the solvers side by side; print one row each, objectives against the Python
    loop's, speed-ups against it and against the numba loop at the same tolerance.

    Returns the largest |relative objective difference| to the Python loop.
    """
    results, seconds = race({name: function for name, (_, function) in solvers.items()},
                            repeats)
    reference = results["loop, Python"]
    worst = 0.0
    for name, (rule, _) in solvers.items():
        difference = max(abs(_relative(o, r)) for o, r in zip(results[name], reference))
        worst = max(worst, difference)
        tol = rule.split()[-1]
        same = f"loop, numba {tol}"
        against = (f"{seconds[same] / seconds[name]:>24.1f}x"
                   if same in seconds and same != name else f"{'':>25}")
        print(f"{label}{name:<22} {rule:<18} {seconds[name]:>8.3f} {difference:>9.1e} "
              f"{seconds['loop, Python'] / seconds[name]:>13.1f}x {against}")
    return worst


def one_large_model(rng, n_models=3, repeats=3):
    print("\n1) one model, 1000 heads x 100 classes (realistic label); chco at the default "
          "tol=1e-9 and at tol=1e-6 (objective certified within 1e-6 of the optimum), each "
          "against the numba loop stopped by the same rule (relative Frank-Wolfe gap)")
    print(f"{'seed':>4} {SOLVER_HEADER}")
    worst = 0.0
    for seed in range(n_models):
        scores = realistic_scores(rng, 1000, 100)
        solvers = loop_solvers([head_class_probabilities(scores)])
        for tol in TOLERANCES:
            solvers[f"chco {tol:.0e}"] = (f"gap <= {tol:.0e}", lambda tol=tol: [
                chco(scores, tol=tol)[1].sum()])
        worst = max(worst, print_race(solvers, repeats, label=f"{seed:>4} "))
    return worst


def batch_of_models(rng, n_models=50, repeats=3):
    print(f"\n2) {n_models} models, 10-1000 heads x 10 classes (realistic labels)")
    models = [realistic_scores(rng, int(rng.integers(10, 1001)), 10) for _ in range(n_models)]
    solvers = loop_solvers([head_class_probabilities(s) for s in models])
    solvers["chco, one by one"] = ("gap <= 1e-09", lambda: [chco(s)[1].sum() for s in models])
    for tol in TOLERANCES:
        solvers[f"chco_many {tol:.0e}"] = (f"gap <= {tol:.0e}", lambda tol=tol: [
            losses.sum() for _, losses in chco_many(models, tol=tol)])
    print(SOLVER_HEADER)
    return print_race(solvers, repeats)


def duality_gap(scores, X):
    """Frank-Wolfe gap of a solution, relative to max(1, objective): it bounds how far the
    objective is above the optimum (checked here independently of the solver)."""
    P = head_class_probabilities(scores)
    A = P.T @ X
    every = np.arange(A.shape[1])
    W, _ = _weights(A, every, A.shape[1])
    G = P @ W
    gap = (G * X).sum() - np.minimum(G.min(axis=1), 0.0).sum()
    return gap / max(1.0, chco_loss(P, X).sum())


def hub(rng, n_models):
    print(f"\n3) chco_many on {n_models} synthetic models, 10-1000 heads x 10 classes, against "
          "the numba loop stopped by the same rule (one run each); 'gap > tol': models whose "
          "certified relative gap is above tol")
    print(f"{'labels':>10} {'tol':>6} {'max_iter':>8} {'heads':>9} {'seconds':>8} "
          f"{'per model ms':>12} {'gap > tol':>9} {'max gap':>8} | {'loop s':>6} "
          f"{'gap > tol':>9} {'max gap':>8} {'speed-up':>8}")
    for name, generator in [("realistic", realistic_scores), ("hub", hub_scores)]:
        models = [generator(rng, int(rng.integers(10, 1001)), 10) for _ in range(n_models)]
        probabilities = [head_class_probabilities(s) for s in models]
        heads = sum(len(m) for m in models)
        for tol, max_iter in [(1e-9, 1000), (1e-4, 300)]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # counted below from the solutions themselves
                results, seconds = _timed(chco_many, models, tol=tol, max_iter=max_iter)
            gaps = np.array([duality_gap(s, X) for s, (X, _) in zip(models, results)])
            loop, loop_seconds = _timed(lambda: [
                compiled_loop(P, gap_tol=tol, max_sweeps=max_iter)[0] for P in probabilities])
            loop_gaps = np.array([duality_gap(s, X) for s, X in zip(models, loop)])
            print(f"{name:>10} {tol:>6.0e} {max_iter:>8} {heads:>9} {seconds:>8.2f} "
                  f"{1000 * seconds / n_models:>12.2f} {(gaps > tol).sum():>9} "
                  f"{gaps.max():>8.1e} | {loop_seconds:>6.2f} {(loop_gaps > tol).sum():>9} "
                  f"{loop_gaps.max():>8.1e} {loop_seconds / seconds:>7.1f}x", flush=True)


def offline_hub(repeats=3):
    from skmll import MLLZeroShotClassifier, ModelLabeler, SemanticDAG
    from skmll.datasets import build_world_hub, make_world

    world = make_world(fashion_test=100)
    labeler = ModelLabeler(SemanticDAG.from_wordnet(world.reference), verbose=0).fit(
        build_world_hub(world, verbose=0))
    names = world.task(list(range(10)))[2]
    # No general model here: a class the hub cannot serve is left out, and named below.
    task = partial(MLLZeroShotClassifier, names, labeler, on_uncovered="drop")
    clf = task().fit()   # warm-up: encoder, node embeddings
    kept = [c for c in names if c not in clf.dropped_classes_]
    rows = [labeler.sdag.node_index[clf.matched_nodes_[c][0]] for c in kept]
    models = [labeler.labels_[n].probabilities[rows].T for n in labeler.hub_.names]
    models = [P / P.sum(axis=0) for P in models]
    print(f"\n4) the offline hub: {len(models)} experts ({sum(len(P) for P in models)} heads) x "
          f"{len(kept)} classes (probability labels; left out: {clf.dropped_classes_ or 'none'})")
    solvers = loop_solvers(models)
    for tol in TOLERANCES:
        solvers[f"chco_many {tol:.0e}"] = (f"gap <= {tol:.0e}", lambda tol=tol: [
            losses.sum() for _, losses in chco_many(models, probabilities=True, tol=tol)])
    print(SOLVER_HEADER)
    difference = print_race(solvers, repeats)
    fits = [_timed(task().fit)[1] for _ in range(5)]
    print(f"MLLZeroShotClassifier.fit, {len(names)}-class task on the whole hub: median "
          f"{np.median(fits):.3f} s (min {min(fits):.3f}, max {max(fits):.3f})")
    return difference


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hub-models", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-offline", action="store_true",
                        help="skip part 4 (the offline world's hub)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved runs per solver in parts 1, 2 and 4 (median)")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    compiled_loop(np.full((2, 2), 0.5))  # compile once here, outside every timing
    worst = max(one_large_model(rng, repeats=args.repeats),
                batch_of_models(rng, repeats=args.repeats))
    if not args.skip_offline:
        worst = max(worst, offline_hub(args.repeats))
    verdict = "ok" if worst <= 1e-6 else "TOO LARGE"
    print(f"\nlargest |relative objective difference| to the loop: {worst:.1e} ({verdict})")
    hub(rng, args.hub_models)


if __name__ == "__main__":
    main()
