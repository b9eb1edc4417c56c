"""``skmll label``: pre-test a hub file's experts on a folder of synset images."""

import argparse
from contextlib import contextmanager

import joblib

from ..hub import LazyExpert, ModelHub, using_expert
from ..labelling import ModelLabeler, label_dir_digest, save_label_dir
from ..semantic_graph import SemanticDAG
from ._common import (
    UsageError,
    add_device_flag,
    as_json,
    as_table,
    existing_directory,
    existing_file,
    positive_int,
)

# The label image size when no expert of the hub says what it takes.
FALLBACK_IMAGE_SIZE = (224, 224)

EXAMPLES = """\
examples:
  skmll label hub.toml --images imagenet/train --labels labels/
  skmll label hub.toml --images photos/ --labels labels/ --n-jobs 4 --per-node 20
  skmll label hub.toml --images /shared/images --labels /shared/labels \\
      --scheduler tcp://scheduler:8786      # on a Dask cluster

ROOT holds one folder per synset, named by WordNet synset (dog.n.01) or ImageNet id
(n02084071), with its image files; the SDAG is those synsets and all their WordNet hypernyms.
DIR receives the labels (DIR/labels), the SDAG without images (DIR/sdag.json) and the hub
file with every expert's n_outputs and fingerprint declared (DIR/hub.toml): copy DIR to any
machine and run 'skmll search' or 'skmll predict' there. Model files inside DIR are named
relative to it, others by their absolute path: --bundle copies them into DIR/models/ so DIR
holds everything. Labelling again into DIR runs only what is new (experts, nodes), and adds the
hub's experts to DIR/hub.toml (an expert named like one there but different replaces it, with a
warning). The digest printed last covers everything DIR holds: publish it with DIR.

Label images are resized to the largest input size among the hub's experts (the input_size
of its hub-file table, else the built expert's own), so that no expert sees its images
enlarged by a bigger one's size: 28 x 28 for a hub of MNIST-sized experts, 224 x 224 beside an
ImageNet classifier. An expert whose table declares no input_size is built once to read it.
--image-size H W fixes the size instead. The size is part of the SDAG's identity: labels
computed at another size are recomputed."""


def register_subcommand(subparsers, parents):
    parser = subparsers.add_parser(
        "label", parents=parents,
        description="Pre-test every expert of a hub file on the images of a synset folder "
                    "and write the label directory.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("hub", metavar="HUB.toml", type=existing_file, help="the hub file")
    parser.add_argument("--images", metavar="ROOT", required=True, type=existing_directory,
                        help="folder of synset folders of images")
    parser.add_argument("--labels", metavar="DIR", required=True,
                        help="label directory to write (created if needed)")
    parser.add_argument("--n-jobs", type=int, default=None,
                        help="joblib workers on this machine (default 1; -1: all cores)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="label on a Dask cluster: its scheduler's address")
    parser.add_argument("--per-node", type=positive_int, default=50,
                        help="images kept per synset (default 50)")
    parser.add_argument("--image-size", type=positive_int, nargs=2, metavar=("H", "W"),
                        default=None, help="size label images are resized to (default: the "
                                           "largest input size of the hub's experts)")
    parser.add_argument("--batch-size", type=positive_int, default=64,
                        help="images per forward pass (default 64)")
    parser.add_argument("--on-error", choices=["raise", "warn", "skip"], default="raise",
                        help="an expert that fails: stop with exit code 1 (raise, after "
                             "labelling the others), or leave it out (warn, skip)")
    parser.add_argument("--bundle", action="store_true",
                        help="copy the model files the hub file names into DIR/models/")
    add_device_flag(parser, "the experts")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.set_defaults(run=run)


def run(args):
    hub = ModelHub.from_toml(args.hub)
    image_size = tuple(args.image_size) if args.image_size else label_image_size(hub)
    sdag = SemanticDAG.from_image_folder(args.images, per_node=args.per_node,
                                         image_size=image_size)
    labeler = ModelLabeler(sdag, batch_size=args.batch_size, n_jobs=args.n_jobs,
                           cache_dir=args.labels, on_error=args.on_error, device=args.device,
                           verbose=args.verbose)
    with _backend(args.scheduler):
        labeler.fit(hub)
    save_label_dir(labeler, args.labels, bundle=args.bundle)
    summary = {
        "labels": str(args.labels),
        "experts": labeler.hub_.names,
        "failed": labeler.failed_experts_,
        "n_nodes": sdag.n_nodes,
        "n_nodes_with_images": int((sdag.n_images > 0).sum()),
        "n_images": int(sdag.n_images.sum()),
        "n_forward_images": labeler.n_forward_images_,
        "image_size": list(image_size),
        "digest": label_dir_digest(args.labels),
    }
    if args.format == "json":
        print(as_json(summary))
    else:
        print(as_table(["expert", "status"],
                       [(name, "labelled") for name in summary["experts"]]
                       + [(name, f"failed: {why}") for name, why in summary["failed"].items()]))
        print(f"{summary['n_nodes']} nodes ({summary['n_nodes_with_images']} with "
              f"{summary['n_images']} images of {image_size[0]} x {image_size[1]}); "
              f"{summary['n_forward_images']} images run through experts; labels in "
              f"{summary['labels']}")
        print(f"digest {summary['digest']}")
    return 0


def label_image_size(hub):
    """The largest ``(H, W)`` input size (by pixel count) among the hub's experts.

    Read from each expert's declared ``input_size`` (its hub-file table), else from the expert
    itself (a specification is built once for it, then released); experts that state no input
    size are left out, and :data:`FALLBACK_IMAGE_SIZE` is used when none states one.
    """
    sizes = [_input_size(expert) for expert in hub]
    sizes = [(size, size) if isinstance(size, int) else tuple(int(s) for s in size)
             for size in sizes if size is not None]
    return max(sizes, key=lambda size: size[0] * size[1], default=FALLBACK_IMAGE_SIZE)


def _input_size(expert):
    declared = getattr(expert, "kwargs", {}).get("input_size")
    if declared is not None:
        return declared
    with using_expert(expert):
        built = expert.load() if isinstance(expert, LazyExpert) else expert
        return getattr(built, "input_size", None)


@contextmanager
def _backend(address):
    """Labelling tasks go to the Dask scheduler at ``address`` (None: joblib's default)."""
    if address is None:
        yield
        return
    try:
        from distributed import Client
    except ImportError:
        raise UsageError("--scheduler needs dask.distributed: pip install 'skmll[dask]'") from None
    with Client(address) as client, joblib.parallel_config(backend="dask"):
        yield client
