"""A label directory handed from one person to another, tried as the probe did: a real `cp -r`
with the original deleted, real edits, a real symlink, real crafted files, a real full disk.

The world: three vegetable/fruit synsets named by ImageNet ids (tomato, cucumber, blueberry),
8 x 8 PNGs of their colours, and a hub of two experts kept in a models folder beside the hub
file: an ONNX graph (data only) and a torch module whose code sits beside a hub file.
"""

import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from skmll.cli import main
from skmll.labelling import label_dir_digest, load_label_dir
from skmll.utils._records import STALE_TEMP_SECONDS

from ..utils._crafted import declared_only_member, replace_payload, zip_bytes

SYNSETS = {"n07734017": (210, 40, 30), "n07718472": (40, 160, 50), "n07743544": (60, 60, 190)}
PHOTOS = {"ripe": ("tomato", (220, 50, 40)), "fresh": ("cucumber", (50, 170, 40)),
          "berry": ("blueberry", (70, 50, 200))}
CLASSES = ["tomato", "cucumber", "blueberry"]


class _Rgb(torch.nn.Module):
    def __init__(self, weights):
        super().__init__()
        self.weights = torch.nn.Parameter(torch.tensor(weights, dtype=torch.float32))

    def forward(self, x):
        return x.mean(dim=(2, 3)) @ self.weights.T


def _export_onnx(weights, path):
    with warnings.catch_warnings():   # the TorchScript exporter warns that it is the legacy one
        warnings.simplefilter("ignore")
        torch.onnx.export(_Rgb(weights).eval(), torch.zeros(1, 3, 8, 8), path,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}},
                          dynamo=False)


MODULE = '''import torch


class Hue(torch.nn.Module):
    def forward(self, x):
        m = x.mean(dim=(2, 3))
        return torch.stack([m[:, 0] - m[:, 1], m[:, 1] - m[:, 2], m[:, 2] - m[:, 0]], dim=1) * 9


def hue():
    return Hue()
'''
ONNX_EXPERT = '''[[expert]]
name = "{name}"
source = "onnx:models/{name}.onnx"
input_size = [8, 8]
'''


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("garden")
    rng = np.random.default_rng(7)
    for folder, rgb in SYNSETS.items():
        (root / "images" / folder).mkdir(parents=True)
        for i in range(3):
            _png(root / "images" / folder / f"{i}.png", rgb, (8, 8), rng)
    (root / "photos").mkdir()
    for name, (_, rgb) in PHOTOS.items():
        _png(root / "photos" / f"{name}.png", rgb, (12, 9), rng)
    (root / "hub" / "models").mkdir(parents=True)
    _export_onnx([[9.0, 0, 0], [0, 9.0, 0], [0, 0, 9.0]], root / "hub" / "models" / "rgb.onnx")
    _export_onnx([[-5.0, 5.0, 0], [5.0, -5.0, 0]], root / "hub" / "models" / "greenish.onnx")
    (root / "hub" / "hub.toml").write_text(ONNX_EXPERT.format(name="rgb"))
    (root / "hub" / "second.toml").write_text(ONNX_EXPERT.format(name="greenish"))
    return root


def _png(path, rgb, size, rng):
    pixels = np.clip(np.array(rgb) + rng.integers(-20, 20, (*size, 3)), 0, 255)
    Image.fromarray(pixels.astype(np.uint8)).save(path)


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def label(capsys, world, labels, *flags, hub="hub.toml"):
    code, out, err = cli(capsys, "label", world / "hub" / hub, "--images", world / "images",
                         "--labels", labels, "--format", "json", "-q", *flags)
    assert code == 0, err
    return json.loads(out)


def predictions(capsys, labels, world, *flags):
    code, out, err = cli(capsys, "predict", "--labels", labels, "--k", "1", "--no-cache",
                         "--format", "json", *flags, "--classes", *CLASSES, "--",
                         world / "photos")
    return code, (json.loads(out) if code == 0 else err)


def copied_away(source, destination):
    """``cp -r SOURCE DESTINATION`` then ``rm -r SOURCE``, as a user does."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-r", str(source), str(destination)], check=True)
    shutil.rmtree(source)
    return destination


def assert_right(rows):
    assert {Path(r["image"]).stem: r["prediction"] for r in rows} == {
        photo: expected for photo, (expected, _) in PHOTOS.items()}


def test_a_bundled_directory_travels_and_an_unbundled_one_names_absolute_paths(
        world, tmp_path, capsys):
    models = tmp_path / "hub"
    shutil.copytree(world / "hub", models)
    plain, bundled = tmp_path / "plain", tmp_path / "bundled"
    for labels, flags in ((plain, ()), (bundled, ("--bundle",))):
        code, out, err = cli(capsys, "label", models / "hub.toml", "--images", world / "images",
                             "--labels", labels, "-q", *flags)
        assert code == 0, err
    assert (plain / "hub.toml").read_text().count(str(models / "models" / "rgb.onnx")) == 1
    assert 'source = "onnx:models/rgb/rgb.onnx"' in (bundled / "hub.toml").read_text()

    plain_copy = copied_away(plain, tmp_path / "elsewhere" / "plain")
    bundled_copy = copied_away(bundled, tmp_path / "elsewhere" / "bundled")
    code, rows = predictions(capsys, plain_copy, world)
    assert code == 0, rows
    assert_right(rows)                      # absolute paths still hold on this machine
    shutil.rmtree(models)                   # ... until the models go
    code, out, _ = cli(capsys, "info", "--labels", plain_copy, "--verify")
    assert code == 1 and "expert rgb cannot be built here: missing file(s): source=" in out
    code, err = predictions(capsys, plain_copy, world)
    assert code == 1 and "rgb.onnx" in err

    code, out, err = cli(capsys, "info", "--labels", bundled_copy, "--verify")
    assert code == 0, out + err
    code, rows = predictions(capsys, bundled_copy, world)
    assert code == 0, rows
    assert_right(rows)


def test_labelling_a_second_hub_adds_to_the_hub_file(world, tmp_path, capsys):
    labels = tmp_path / "labels"
    label(capsys, world, labels)
    label(capsys, world, labels, hub="second.toml")
    assert load_label_dir(labels).hub_.names == ["rgb", "greenish"]
    # another expert under a taken name replaces it, with a warning
    clash = tmp_path / "clash.toml"
    clash.write_text(ONNX_EXPERT.format(name="greenish").replace(
        "models/greenish.onnx", str(world / "hub" / "models" / "rgb.onnx")))
    code, _, err = cli(capsys, "label", clash, "--images", world / "images", "--labels", labels)
    assert code == 0 and "expert 'greenish' of" in err and "is replaced" in err
    assert load_label_dir(labels).hub_.names == ["rgb", "greenish"]


def _swap_record_columns(labels):
    json_path = sorted((labels / "labels" / "v1").glob("*.json"))[0]
    key = json_path.stem
    record = json.loads(json_path.read_text())
    with np.load(labels / "labels" / "v1" / record["npz"]) as npz:
        arrays = {name: npz[name] for name in npz.files}
    for name in ("logit_sums", "probability_sums"):
        arrays[name] = arrays[name][:, ::-1].copy()
    from ..utils._crafted import stored_member
    replace_payload(labels / "labels" / "v1", key,
                    zip_bytes([stored_member(name, arrays[name]) for name in sorted(arrays)]))


def _swap_node_texts(labels):
    manifest = json.loads((labels / "sdag.json").read_text())
    first, second = [n for n in manifest["nodes"] if n["n_images"]][:2]
    first["text"], second["text"] = second["text"], first["text"]
    (labels / "sdag.json").write_text(json.dumps(manifest))


def _swap_fingerprints(labels):
    text = (labels / "hub.toml").read_text()
    one, two = [line for line in text.splitlines() if line.startswith("fingerprint")]
    (labels / "hub.toml").write_text(text.replace(one, "@").replace(two, one).replace("@", two))


@pytest.mark.parametrize("edit", [_swap_record_columns, _swap_node_texts, _swap_fingerprints])
def test_the_digest_is_printed_travels_and_catches_deliberate_edits(world, tmp_path, capsys,
                                                                    edit):
    labels = tmp_path / "labels"
    label(capsys, world, labels)
    published = label(capsys, world, labels, hub="second.toml")["digest"]
    code, out, _ = cli(capsys, "info", "--labels", labels)
    assert f"digest {published}" in out and code == 0
    copy = copied_away(labels, tmp_path / "downloaded")
    assert label_dir_digest(copy) == published
    for command in (["search", "--no-cache", "tomato"], ["info"],
                    ["explain", "--no-cache", "tomato"]):
        code, _, err = cli(capsys, command[0], "--labels", copy, "--expect-digest", published,
                           *command[1:])
        assert code == 0, err

    edit(copy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code, out, err = cli(capsys, "info", "--labels", copy, "--verify", "--format", "json")
    assert json.loads(out)["digest"] != published
    code, _, err = cli(capsys, "search", "--labels", copy, "--no-cache", "--expect-digest",
                       published, "tomato")
    assert code == 1 and f"not the expected {published}" in err
    code, _, err = cli(capsys, "search", "--labels", copy, "--expect-digest", "sha256:12", "x")
    assert code == 2 and "64 hex digits" in err


def _code_directory(world, tmp_path, capsys, source, arguments):
    """A label directory whose hub file names a code source (its labels copied from the
    ONNX expert's, its fingerprint declared: nothing needs building until predict), and a
    ``hubconf.py`` that would leave a PWNED file if it ever ran."""
    labels = tmp_path / "labels"
    label(capsys, world, labels)
    (labels / "hubconf.py").write_text(f"open({str(tmp_path / 'PWNED')!r}, 'w').close()\n"
                                       "def m():\n    pass\n")
    text = (labels / "hub.toml").read_text()
    source_line = next(line for line in text.splitlines() if line.startswith("source"))
    (labels / "hub.toml").write_text(text.replace(
        source_line, f'source = "{source}"\nfactory_kwargs = {arguments.format(labels=labels)}'))
    return labels


@pytest.mark.parametrize("source, arguments", [
    ("torch:os:system", '{{command = "touch PWNED"}}'),
    ("torch:torch.hub:load", '{{repo_or_dir = "{labels}", model = "m", source = "local", '
                             'trust_repo = true}}'),
])
def test_code_named_by_a_directory_runs_only_with_consent(world, tmp_path, capsys, monkeypatch,
                                                         source, arguments):
    labels = _code_directory(world, tmp_path, capsys, source, arguments)
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli(capsys, "search", "--labels", labels, "--no-cache", "tomato")
    assert code == 0 and "rgb" in out                  # labels need no consent
    code, err = predictions(capsys, labels, world)
    assert code == 1 and f"'{source}' imports and runs code" in err
    assert f"--trust-code {labels}" in err and "expert 'rgb'" in err
    assert not (tmp_path / "PWNED").exists()
    code, out, _ = cli(capsys, "info", "--labels", labels, "--verify")
    assert code == 1 and "expert rgb cannot be built here" in out and "--trust-code" in out
    code, _, err = cli(capsys, "predict", "--labels", labels, "--trust-code", world,
                       "--classes", "tomato", "--", world / "photos")
    assert code == 2 and "consent names the directory" in err
    assert not (tmp_path / "PWNED").exists()
    # with consent the same entry does run (and then fails: it returns no model)
    code, err = predictions(capsys, labels, world, "--trust-code", labels)
    assert code == 1 and (tmp_path / "PWNED").exists()


def test_a_module_beside_the_hub_file_imports_only_with_consent(world, tmp_path, capsys):
    own = tmp_path / "own"
    own.mkdir()
    (own / "garden_models.py").write_text(MODULE)
    (own / "hub.toml").write_text('[[expert]]\nname = "hue"\nsource = '
                                  '"torch:garden_models:hue"\ninput_size = [8, 8]\n')
    labels = tmp_path / "labels"
    code, _, err = cli(capsys, "label", own / "hub.toml", "--images", world / "images",
                       "--labels", labels, "-q")    # one's own hub file: its module imports
    assert code == 0, err
    sys.modules.pop("garden_models")
    shutil.rmtree(own)
    code, err = predictions(capsys, labels, world, "--trust-code", labels)
    assert code == 1 and "module 'garden_models'" in err and "not installed" in err \
        and str(labels / "garden_models.py") in err
    (labels / "garden_models.py").write_text(MODULE)   # the publisher ships it
    published = label_dir_digest(labels)
    code, err = predictions(capsys, labels, world)
    assert code == 1 and "imports and runs code" in err and "garden_models" not in sys.modules
    try:
        code, rows = predictions(capsys, labels, world, "--trust-code", labels)
        assert code == 0, rows
        assert_right(rows)
        assert sys.modules["garden_models"].__file__ == str(labels / "garden_models.py")
    finally:
        sys.modules.pop("garden_models", None)
    assert not (labels / "__pycache__").exists() and label_dir_digest(labels) == published


def _tree(folder):
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def test_read_only_commands_write_nothing_not_even_through_a_symlink(world, tmp_path, capsys):
    labels = tmp_path / "labels"
    label(capsys, world, labels)
    photos = tmp_path / "holiday"      # the user's files, where labels/v1 is moved and linked
    shutil.move(labels / "labels" / "v1", photos)
    (labels / "labels" / "v1").symlink_to(photos, target_is_directory=True)
    theirs = [photos / "holiday.photos.npz", photos / ".session.tmp",
              labels / "labels" / ".left.json.0a.tmp"]
    then = time.time() - STALE_TEMP_SECONDS - 60
    for path in theirs:
        path.write_bytes(b"mine")
        os.utime(path, (then, then))
    before = (_tree(labels), _tree(photos))
    for command in (["search", "--no-cache", "tomato"], ["info", "--verify"],
                    ["explain", "--no-cache", "tomato"]):
        code, _, err = cli(capsys, command[0], "--labels", labels, *command[1:])
        assert code in (0, 1), err
    code, rows = predictions(capsys, labels, world)
    assert code == 0, rows
    assert (_tree(labels), _tree(photos)) == before


def test_a_crafted_record_is_reported_by_info_verify(world, tmp_path, capsys):
    labels = tmp_path / "labels"
    label(capsys, world, labels)
    (json_path,) = (labels / "labels" / "v1").glob("*.json")
    replace_payload(json_path.parent, json_path.stem, zip_bytes(
        [declared_only_member(name, shape) for name, shape in
         [("counts", (1,)), ("logit_sums", (1, 10**13)), ("probability_sums", (1, 10**13))]]),
        node_keys=["x"], n_heads=10**13)
    code, out, err = cli(capsys, "info", "--labels", labels, "--verify")
    assert code == 1 and "corrupt" in out and "but the archive holds 0 bytes" in out


def test_an_image_over_the_pixel_cap_is_refused_naming_it(world, tmp_path, capsys):
    labels = tmp_path / "labels"
    label(capsys, world, labels)
    big = tmp_path / "big.png"
    Image.new("1", (12000, 12000)).save(big)      # 144 million pixels in a few kilobytes
    assert big.stat().st_size < 200_000
    code, _, err = cli(capsys, "predict", "--labels", labels, "--no-cache", "--classes",
                       *CLASSES, "--", big)
    assert code == 1 and "big.png" in err and "144,000,000 pixels" in err
    code, _, err = cli(capsys, "predict", "--labels", labels, "--no-cache",
                       "--max-image-pixels", "80", "--classes", *CLASSES, "--",
                       world / "photos" / "ripe.png")
    assert code == 1 and "9 x 12 = 108 pixels, over the limit of 80" in err
    code, _, err = cli(capsys, "predict", "--labels", labels, "--no-cache",
                       "--max-image-pixels", "108", "--classes", *CLASSES, "--",
                       world / "photos" / "ripe.png")
    assert code == 0, err


def test_names_with_terminal_escapes_are_printed_escaped(world, tmp_path, capsys):
    hub = tmp_path / "hub.toml"
    hub.write_text(ONNX_EXPERT.format(name="rgb").replace(
        'name = "rgb"', 'name = "\\u001b[2Jrgb"').replace(
        "models/", str(world / "hub" / "models") + "/"))
    code, out, err = cli(capsys, "label", hub, "--images", world / "images", "--labels",
                         tmp_path / "labels", "-q")
    assert code == 0, err
    code, out2, err = cli(capsys, "info", "--labels", tmp_path / "labels")
    for text in (out, out2):
        assert "\x1b" not in text and "\\x1b[2Jrgb" in text


@pytest.fixture
def full_disk(tmp_path):
    """A 1 MiB tmpfs, mounted for the test (skipped where this user cannot mount one)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_predict_out_on_a_full_disk_keeps_the_previous_file(world, tmp_path, capsys,
                                                           full_disk):
    labels = tmp_path / "labels"
    label(capsys, world, labels)
    out = full_disk / "pred.csv"
    code, _, err = cli(capsys, "predict", "--labels", labels, "--no-cache", "--out", out,
                       "--classes", *CLASSES, "--", world / "photos")
    assert code == 0, err
    previous = out.read_bytes()
    with open(full_disk / "filler", "wb", buffering=0) as filler:
        with pytest.raises(OSError):
            while True:
                filler.write(b"\0" * 4096)
    code, _, err = cli(capsys, "predict", "--labels", labels, "--no-cache", "--out", out,
                       "--classes", *CLASSES, "--", world / "photos")
    assert code == 1 and "No space left" in err
    assert out.read_bytes() == previous
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler", "pred.csv"]
