"""``skmll paper``: the paper's experiment (Table 1) and a check of its hub file."""

import argparse
import json
import math
from pathlib import Path

from ..hub import ModelHub
from ..labelling import HUB_FILE, read_sdag_manifest
from ..paper import (
    PAPER_DATASETS,
    PAPER_PROMPT,
    check_hub,
    export_hf_imagenet,
    format_table,
    imagenet_sdag,
    label_hub,
    load_clip,
    load_paper_task,
    paper_hub_file,
    run_paper_experiment,
)
from ..paper._plan import labels_size, measure_experts, plan_labelling
from ._common import (
    UsageError,
    add_digest_flag,
    as_json,
    as_table,
    check_digest,
    existing_directory,
    existing_file,
    positive_int,
)

EXAMPLES = """\
examples:
  skmll paper check-hub                     # does every model id of the shipped hub resolve?
  skmll paper run --imagenet imagenet/train --labels labels/ --data-root data/ --out results/
  skmll paper run --labels labels/ --data-root data/ --datasets pets flowers --max-per-class 20
  skmll paper run --labels labels/ --data-root data/ --device cuda --dry-run   # needs?

--imagenet is an ImageNet-layout training folder (one folder per WordNet id); it is labelled
once into --labels (a rerun labels only new experts and nodes). Without --imagenet the labels
already in --labels are used. With --hf-imagenet NAME the images of that Hugging Face dataset
are first written into --imagenet. --data-root holds the evaluation datasets in their
published layouts:
  oxford-iiit-pet/                  images/, annotations/test.txt
  food-101/                         images/, meta/test.txt, meta/classes.txt
  caltech-101/101_ObjectCategories/ one folder per class
  flowers-102/                      jpg/, imagelabels.mat, setid.mat
  meta-album/DOG|AWA|BRD/           labels.csv, images/"""


def register_subcommand(subparsers, parents):
    parser = subparsers.add_parser(
        "paper",
        description="Run the paper's experiment: label a hub on ImageNet, then evaluate MLL, "
                    "CLIP and MLL patched by CLIP on the evaluation datasets.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="paper_command", metavar="PAPER_COMMAND", required=True)
    _register_run(commands, parents)
    _register_check(commands, parents)


def _register_check(commands, parents):
    parser = commands.add_parser(
        "check-hub", parents=parents, help="list the hub's Hugging Face ids that do not resolve",
        description="Check every Hugging Face model of a hub file (default: the shipped one) "
                    "on the Hub; exit 1 when some do not resolve.")
    parser.add_argument("--hub", metavar="HUB.toml", type=existing_file,
                        help="hub file to check (default: the shipped paper hub)")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.set_defaults(run=run_check)


def _register_run(commands, parents):
    parser = commands.add_parser(
        "run", parents=parents, help="label the hub and print Table 1",
        description="Label the hub on ImageNet (cached in --labels), then evaluate MLL, CLIP "
                    "and MLL+CLIP on each dataset; print Table 1 and write it to --out.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hub", metavar="HUB.toml", type=existing_file,
                        help="hub file (default: the shipped paper hub of 48 models when "
                             "labelling, the label directory's own hub file otherwise)")
    parser.add_argument("--labels", metavar="DIR", required=True, help="label directory")
    add_digest_flag(parser)
    parser.add_argument("--imagenet", metavar="ROOT",
                        help="ImageNet-layout training folder to label the hub on")
    parser.add_argument("--hf-imagenet", metavar="NAME",
                        help="Hugging Face dataset written into --imagenet first "
                             "(e.g. ILSVRC/imagenet-1k; needs the datasets package and access)")
    parser.add_argument("--per-node", type=positive_int, default=50,
                        help="images per synset (default 50, the paper's)")
    parser.add_argument("--image-size", type=positive_int, nargs=2, metavar=("H", "W"),
                        default=(224, 224), help="SDAG image size (default 224 224)")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--n-jobs", type=int, default=None, help="joblib workers for labelling")
    parser.add_argument("--on-error", choices=["raise", "warn", "skip"], default="raise",
                        help="an expert that fails to label: stop, or leave it out")
    parser.add_argument("--data-root", metavar="DIR", required=True, type=existing_directory,
                        help="folder of the evaluation datasets (see below)")
    parser.add_argument("--datasets", nargs="+", choices=list(PAPER_DATASETS),
                        default=list(PAPER_DATASETS), help="datasets to evaluate (default all)")
    parser.add_argument("--class-names", metavar="DATASET=FILE", nargs="+", default=[],
                        type=_dataset_file, help="a dataset's class names from FILE "
                        "('identifier<TAB>name' lines) instead of the shipped ones")
    parser.add_argument("--max-per-class", type=positive_int, default=None,
                        help="test images kept per class (default all)")
    parser.add_argument("--k", type=positive_int, default=2, help="experts per class (default 2)")
    parser.add_argument("--clip-model", default="ViT-B-32", help="open_clip architecture")
    parser.add_argument("--clip-pretrained", default="openai", help="open_clip weights tag")
    parser.add_argument("--clip-checkpoint", metavar="PATH", type=existing_file,
                        help="local CLIP state dict instead of --clip-pretrained")
    parser.add_argument("--device", default="cpu",
                        help="torch device of every expert and of CLIP (default cpu)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the forward passes and disk that labelling needs and each "
                             "expert's measured ms per image on --device, then stop")
    parser.add_argument("--out", metavar="DIR", default="results/paper",
                        help="where table1.csv and table1.md go (default results/paper)")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.set_defaults(run=run)


def _dataset_file(text):
    name, _, path = text.partition("=")
    if name not in PAPER_DATASETS or not path:
        raise argparse.ArgumentTypeError(f"expected DATASET=FILE with DATASET one of "
                                         f"{list(PAPER_DATASETS)}; got {text!r}")
    return name, existing_file(path)


def run_check(args):
    problems = check_hub(args.hub)
    if args.format == "json":
        print(as_json(problems))
    elif problems:
        print(as_table(["expert", "problem"], sorted(problems.items())))
    else:
        print("every Hugging Face model of the hub resolves")
    return 1 if problems else 0


def _sdag(args):
    if args.hf_imagenet is not None:
        if args.imagenet is None:
            raise UsageError("--hf-imagenet needs --imagenet ROOT: the folder its images go to")
        export_hf_imagenet(args.hf_imagenet, args.imagenet, per_node=args.per_node)
    if args.imagenet is None:
        return None
    return imagenet_sdag(args.imagenet, per_node=args.per_node,
                         image_size=tuple(args.image_size))


def _tasks(args):
    files = dict(args.class_names)
    for name in args.datasets:
        task = load_paper_task(name, args.data_root, class_names=files.get(name))
        yield task if args.max_per_class is None else task.subsample(args.max_per_class)


def _hub(args):
    """The hub a run uses: --hub, else the label directory's own (labels made elsewhere), else
    the shipped paper hub."""
    if args.hub is not None:
        return ModelHub.from_toml(args.hub)
    own = Path(args.labels) / HUB_FILE
    if args.imagenet is None and own.is_file():
        return ModelHub.from_toml(own)
    with paper_hub_file() as path:
        return ModelHub.from_toml(path)


def _sample_images(tasks, n=8):
    """One test image of each of the first ``n`` classes: what the experts will be given."""
    task = tasks[0]
    firsts = {}
    for image, label in zip(task.images, task.labels):
        firsts.setdefault(label, image)
    return list(firsts.values())[:n]


def _size(n_bytes):
    """``n_bytes`` for a person: "576 B", "1.2 MB", "6.8 GB"."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.3g} {unit}"
    return f"{n_bytes} B"


def _labelling_plan(args, hub):
    """The labelling plan (None when nothing is labelled), its lines printed before any expert
    is built."""
    if args.imagenet is None:
        sdag = read_sdag_manifest(args.labels)   # a clear error unless it is a label directory
        print(f"labelling: none (the labels in {args.labels} are used: "
              f"{int((sdag.n_images > 0).sum()):,} synsets with images)")
        return None
    if not Path(args.imagenet).is_dir():
        print(f"labelling: {args.imagenet} does not exist yet (--hf-imagenet writes up to "
              f"{args.per_node} images per class there); counted once it does")
        return None
    plan = plan_labelling(hub, args.imagenet, per_node=args.per_node,
                          image_size=tuple(args.image_size))
    print(f"labelling: {plan.n_experts} experts x {plan.n_images:,} images "
          f"({plan.n_nodes:,} synsets, <= {args.per_node} each) = "
          f"{plan.forward_passes:,} forward passes at most")
    labels = ("counted below, once the experts are built (some declare no n_outputs)"
              if plan.label_bytes is None else _size(plan.label_bytes))
    print(f"label directory: labels {labels}; patch reference images "
          f"{_size(plan.reference_bytes)}", flush=True)
    return plan


def _dry_run(args, tasks):
    hub = _hub(args)
    plan = _labelling_plan(args, hub)   # before any expert is built (or downloaded) to be timed
    costs = measure_experts(hub, _sample_images(tasks), device=args.device)
    print(as_table(["expert", f"ms/image ({args.device})", "GFLOPs/image"],
                   [(name, f"{c.ms_per_image:.3g}",
                     "-" if c.gflops is None else f"{c.gflops:.3g}") if not isinstance(c, str)
                    else (name, "failed", c) for name, c in costs.items()]))
    failed = any(isinstance(c, str) for c in costs.values())
    if plan is not None and plan.label_bytes is None and not failed:
        size = labels_size(plan.n_nodes, [expert.n_outputs for expert in hub])
        print(f"label directory: labels {_size(size)}")
    return 1 if failed else 0


def run(args):
    tasks = list(_tasks(args))   # a missing dataset fails before hours of labelling
    check_digest(args.labels, args.expect_digest)
    if args.dry_run:
        return _dry_run(args, tasks)
    labeler = label_hub(args.hub, args.labels, sdag=_sdag(args), batch_size=args.batch_size,
                        n_jobs=args.n_jobs, on_error=args.on_error, device=args.device,
                        verbose=args.verbose)
    clips = [load_clip(args.clip_model, args.clip_pretrained, templates=templates,
                       checkpoint_path=args.clip_checkpoint, device=args.device)
             for templates in ((PAPER_PROMPT,), "default")]
    rows = run_paper_experiment(tasks, labeler, clips[0], clip_ensemble=clips[1], k=args.k,
                                device=args.device, out_dir=args.out, verbose=args.verbose)
    if args.format == "json":   # JSON has no NaN: an undefined figure is null
        print(json.dumps([{key: None if isinstance(value, float) and math.isnan(value)
                           else value for key, value in row.items()} for row in rows], indent=2))
    else:
        print(format_table(rows))
        print(f"written to {args.out}/table1.csv and table1.md")
    return 0
