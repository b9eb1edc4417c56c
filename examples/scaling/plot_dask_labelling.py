"""
===========================
Labelling on a Dask cluster
===========================

Labelling (pre-testing every expert on the Semantic DAG) is the heavy step of Model Label
Learning: the paper's DAG has 11,312 nodes with 50 images each. :class:`~skmll.ModelLabeler`
splits it into (expert, shard of nodes) tasks and dispatches them through joblib, so
``joblib.parallel_config(backend="dask")`` sends them to a Dask cluster. The labels are the
same numbers as a serial run's, whatever the number of workers.

Here the cluster is two worker threads in this process, so that the example runs anywhere
(worker *processes* start by re-importing the script that creates them, which a script allows
only under ``if __name__ == "__main__":``). With worker processes or a real cluster the only
change is how the client is made: ``Client(LocalCluster(n_workers=4, threads_per_worker=1))``
or ``Client("tcp://scheduler:8786")``. The user guide's page on scaling says what the workers
need.
"""

# %%
# A hub and a DAG
# ---------------
# Six small experts on the digits; shards of at most 64 images split each expert's work into
# several tasks.
import time
from functools import partial

import matplotlib.pyplot as plt
import numpy as np
from dask.distributed import Client, LocalCluster, get_task_stream
from joblib import parallel_config

from skmll import ModelHub, ModelLabeler, SemanticDAG
from skmll.datasets import load_digit_splits, train_digit_expert

splits = load_digit_splits()
# Each expert: a small network trained in a second on the digits of its heads only.
train_expert = partial(train_digit_expert, splits.train_images, splits.train_digits)
hub = ModelHub([
    train_expert("zero-to-four", [[0], [1], [2], [3], [4]]),
    train_expert("five-to-nine", [[5], [6], [7], [8], [9]]),
    train_expert("parity", [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]),
    train_expert("round", [[1, 2, 3, 4, 5, 7], [0, 6, 8, 9]]),
    train_expert("pairs", [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]),
    train_expert("thirds", [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]),
])
sdag = SemanticDAG.from_wordnet(splits.reference, cache_dir=False)
settings = dict(images_per_shard=64, cache_dir=False, verbose=0)

# %%
# Serial, then on the cluster
# ---------------------------
# ``scatter=[sdag, *hub]`` sends the DAG and the experts to the workers once, instead of with
# every task. Only the process that calls ``fit`` writes the label cache (here: none,
# ``cache_dir=False``), so the workers need no shared disk for it.
start = time.perf_counter()
serial = ModelLabeler(sdag, **settings).fit(hub)
serial_seconds = time.perf_counter() - start

with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                  dashboard_address=None) as cluster, Client(cluster) as client:
    start = time.perf_counter()
    with get_task_stream(client) as tasks, parallel_config(backend="dask",
                                                           scatter=[sdag, *hub]):
        distributed = ModelLabeler(sdag, **settings).fit(hub)
    dask_seconds = time.perf_counter() - start
    workers = {task["worker"] for task in tasks.data}

same = all(np.array_equal(serial.labels_[name].probabilities,
                          distributed.labels_[name].probabilities, equal_nan=True)
           for name in hub.names)
print(f"{len(tasks.data)} tasks ran on {len(workers)} workers; identical labels: {same}")
print(f"serial {serial_seconds:.2f} s, Dask {dask_seconds:.2f} s")

# %%
# On a hub this small the cluster's scheduling costs more than it saves: the split pays when
# each task holds many images and heavy experts (``images_per_shard`` defaults to 2048).

# %%
# What a label looks like
# -----------------------
# One expert's label: its mean softmax output (columns: its heads) on each DAG node's images
# (rows), mixed up the DAG (Eq. 1-2). Nodes above the digits (``digit.n.01``, ``integer.n.01``
# and on up to ``entity.n.01``) take the mean of their successors.
label = distributed.labels_["pairs"]
fig, ax = plt.subplots(figsize=(6, 6))
shown = ax.imshow(label.probabilities, cmap="magma", vmin=0, vmax=1, aspect="auto")
ax.set_yticks(range(len(label.node_ids)), label.node_ids, fontsize="small")
ax.set_xticks(range(label.n_heads), ["0|1", "2|3", "4|5", "6|7", "8|9"])
ax.set_xlabel("head of the expert 'pairs' (the digits it was trained to group)")
fig.colorbar(shown, ax=ax, label="mean softmax output")
ax.set_title("A model label, computed on the Dask cluster")
fig.tight_layout()
plt.show()
