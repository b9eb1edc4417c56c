"""The paper's experiment (Table 1), ready to run where ImageNet, the datasets and the weights are.

The SDAG is built from an ImageNet training folder (:func:`imagenet_sdag`, or a Hugging Face
copy exported by :func:`export_hf_imagenet`); the hub is the shipped file of 48 Hugging Face
classifiers (:func:`paper_hub_file`, checked online by :func:`check_hub`); the seven
evaluation datasets load from their published layouts (:data:`PAPER_DATASETS`); and
:func:`run_paper_experiment` reports the paper's Table 1 on each: CLIP ViT-B/32 with the paper's
prompt (and the 10-prompt ensemble beside it) and MLL patched by CLIP, for the paper's
configuration and for skmll's defaults, with Acc(c), Cvr and Acc(a) as the paper defines them
and its published figures beside ours. The command line is ``skmll paper run`` (or
``python -m skmll.paper run``).
"""

from ._datasets import (
    PAPER_DATASETS,
    ZeroShotTask,
    flowers102_class_names,
    load_caltech101,
    load_flowers102,
    load_food101,
    load_hf_task,
    load_meta_album,
    load_oxford_pets,
    load_paper_task,
    read_class_names,
)
from ._experiment import (
    COLUMNS,
    CONFIGURATIONS,
    METHODS,
    PAPER_CONFIGURATION,
    PAPER_PROMPT,
    evaluate_task,
    format_table,
    label_hub,
    load_clip,
    run_paper_experiment,
    write_table,
)
from ._hub import check_hub, paper_hub_file
from ._imagenet import export_hf_imagenet, imagenet_sdag

__all__ = [
    "COLUMNS", "CONFIGURATIONS", "METHODS", "PAPER_CONFIGURATION", "PAPER_DATASETS",
    "PAPER_PROMPT", "ZeroShotTask", "check_hub", "evaluate_task", "export_hf_imagenet",
    "flowers102_class_names", "format_table", "imagenet_sdag", "label_hub", "load_caltech101",
    "load_clip", "load_flowers102", "load_food101", "load_hf_task", "load_meta_album",
    "load_oxford_pets", "load_paper_task", "paper_hub_file", "read_class_names",
    "run_paper_experiment", "write_table",
]
