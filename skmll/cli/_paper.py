"""``skmll paper``: the paper's experiment (Table 1) and a check of its hub file."""

import argparse
import json
import math

from ..paper import (
    PAPER_DATASETS,
    check_hub,
    export_hf_imagenet,
    format_table,
    imagenet_sdag,
    label_hub,
    load_clip,
    load_paper_task,
    run_paper_experiment,
)
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
    parser.add_argument("--max-per-class", type=positive_int, default=None,
                        help="test images kept per class (default all)")
    parser.add_argument("--k", type=positive_int, default=2, help="experts per class (default 2)")
    parser.add_argument("--clip-model", default="ViT-B-32", help="open_clip architecture")
    parser.add_argument("--clip-pretrained", default="openai", help="open_clip weights tag")
    parser.add_argument("--clip-checkpoint", metavar="PATH", type=existing_file,
                        help="local CLIP state dict instead of --clip-pretrained")
    parser.add_argument("--device", default="cpu", help="CLIP's torch device (default cpu)")
    parser.add_argument("--out", metavar="DIR", default="results/paper",
                        help="where table1.csv and table1.md go (default results/paper)")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.set_defaults(run=run)


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
    for name in args.datasets:
        task = load_paper_task(name, args.data_root)
        yield task if args.max_per_class is None else task.subsample(args.max_per_class)


def run(args):
    tasks = list(_tasks(args))   # a missing dataset fails before hours of labelling
    check_digest(args.labels, args.expect_digest)
    labeler = label_hub(args.hub, args.labels, sdag=_sdag(args), batch_size=args.batch_size,
                        n_jobs=args.n_jobs, on_error=args.on_error, verbose=args.verbose)
    clip = load_clip(args.clip_model, args.clip_pretrained, checkpoint_path=args.clip_checkpoint,
                     device=args.device)
    rows = run_paper_experiment(tasks, labeler, clip, k=args.k, out_dir=args.out,
                                verbose=args.verbose)
    if args.format == "json":   # JSON has no NaN: an undefined Acc(c) is null
        print(json.dumps([{key: None if isinstance(value, float) and math.isnan(value)
                           else value for key, value in row.items()} for row in rows], indent=2))
    else:
        print(format_table(rows))
        print(f"written to {args.out}/table1.csv and table1.md")
    return 0
