"""Hub files: a hub as TOML tables, read into lazy experts and written back."""

import tomllib

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from skmll import ModelHub, ModelLabeler
from skmll.hub import LazyExpert, TorchExpert, create_expert, run_expert

from . import _factories

FACTORY = "torch:tests.hub._factories:mlp"


@pytest.fixture
def zoo(tmp_path, digit_experts):
    """A folder with a torch weights file and an ONNX file, as a team would share it."""
    folder = tmp_path / "zoo"
    (folder / "weights").mkdir(parents=True)
    (folder / "models").mkdir()
    low = digit_experts[0]
    save_file({k: v.contiguous() for k, v in low.module.state_dict().items()},
              folder / "weights" / "low.safetensors")
    parity = digit_experts[2]
    torch.onnx.export(parity.module, torch.zeros(1, 1, 8, 8), folder / "models" / "parity.onnx",
                      dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})
    return folder


@pytest.fixture
def images():
    return np.random.default_rng(5).random((4, 8, 8, 3), dtype=np.float32)


HUB_FILE = """\
# two experts of a digit zoo
[[expert]]
name = "low digits"
source = "torch:tests.hub._factories:mlp"
weights = "weights/low.safetensors"
factory_kwargs = {{ n_outputs = 5 }}
input_size = [8, 8]
channels = 1
n_outputs = 5
fingerprint = "{fingerprint}"
head_names = ["0", "1", "2", "3", "4"]

[[expert]]
source = "onnx:models/parity.onnx"
channels = 1
"""


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_paths_resolve_against_the_file_and_the_hub_round_trips(zoo, tmp_path, monkeypatch,
                                                                digit_experts, images):
    low, parity = digit_experts[0], digit_experts[2]
    path = write(zoo / "hub.toml", HUB_FILE.format(fingerprint=low.fingerprint))
    monkeypatch.chdir(tmp_path)                      # not the file's folder
    hub = ModelHub.from_toml(path)
    assert hub.names == ["low digits", "parity"]
    assert not any(expert.is_loaded for expert in hub)
    np.testing.assert_allclose(run_expert(hub["low digits"], images), run_expert(low, images),
                               rtol=1e-6)
    np.testing.assert_allclose(run_expert(hub["parity"], images), run_expert(parity, images),
                               rtol=1e-5, atol=1e-6)

    hub.to_toml(zoo / "copy.toml")
    tables = tomllib.loads((zoo / "copy.toml").read_text())["expert"]
    assert tables[0]["weights"] == "weights/low.safetensors"     # relative to the new file
    assert tables[1]["source"] == "onnx:models/parity.onnx"
    assert tables[1]["n_outputs"] == 2                         # learnt by running it
    assert [e.spec for e in ModelHub.from_toml(zoo / "copy.toml")] == [e.spec for e in hub]

    elsewhere = tmp_path / "team" / "hub.toml"
    hub.to_toml(elsewhere)
    moved = tomllib.loads(elsewhere.read_text())["expert"]
    # a file outside the new file's folder is named absolutely: never by a path that only
    # holds while the two folders keep their places
    assert moved[0]["weights"] == str(zoo / "weights" / "low.safetensors")
    again = ModelHub.from_toml(elsewhere)
    np.testing.assert_allclose(run_expert(again["low digits"], images), run_expert(low, images),
                               rtol=1e-6)


def test_writing_what_was_read_gives_the_same_file(zoo, digit_experts):
    path = write(zoo / "hub.toml", HUB_FILE.format(fingerprint=digit_experts[0].fingerprint))
    ModelHub.from_toml(path).to_toml(zoo / "first.toml")
    ModelHub.from_toml(zoo / "first.toml").to_toml(zoo / "second.toml")
    assert (zoo / "first.toml").read_text() == (zoo / "second.toml").read_text()


@pytest.mark.parametrize("text, message", [
    ('[[expert]]\nsource = "{f}"\ninput_szie = [8, 8]\n',
     r"table 1: unknown argument\(s\) \['input_szie'\] for source 'torch:'"),
    ('[[expert]]\nsource = "{f}"\nname = "a"\n[[expert]]\nsource = "{f}"\nname = "b"\n'
     'batch = 3\n', r"table 2 \('b'\): unknown argument\(s\) \['batch'\]"),
    ('[[expert]]\nname = "a"\nweights = "w.pt"\n', r"table 1 \('a'\): no 'source' key"),
    ('[[expert]]\nsource = "timm:"\n', "table 1: expert source 'timm:' names no model"),
    ('[[expert]]\nsource = "caffe:net"\n', "table 1: unknown expert source 'caffe:net'"),
    ('[[expert]]\nsource = "{f}"\nname = "a"\n[[expert]]\nsource = "onnx:m.onnx"\n'
     'name = "a"\n', r"table 2 \('a'\): duplicate expert name 'a'"),
    ('[[expert]]\nsource = "{f}"\nn_outputs = "five"\n', "n_outputs must be an int >= 1"),
    ('[[expert]]\nsource = "{f}"\nbase_dir = "/"\n', "unknown key 'base_dir'"),
    ('[experts]\nsource = "{f}"\n', r"unknown top-level key\(s\) \['experts'\]"),
    ('[[expert]]\nsource = "{f}\n', "not valid TOML"),
])
def test_bad_tables_are_named_in_the_error(tmp_path, text, message):
    path = write(tmp_path / "hub.toml", text.replace("{f}", FACTORY))
    with pytest.raises(ValueError, match=f"hub.toml.*{message}"):
        ModelHub.from_toml(path)


def test_only_specifications_can_be_written(tmp_path, digit_experts):
    with pytest.raises(TypeError, match=r"\['expert-a'\] are model objects"):
        ModelHub(digit_experts[:1]).to_toml(tmp_path / "hub.toml")
    by_callable = LazyExpert("torch:w.pt", module_factory=lambda: None, input_size=[8, 8])
    with pytest.raises(TypeError, match="argument 'module_factory'.*function cannot be written"):
        ModelHub([by_callable]).to_toml(tmp_path / "hub.toml")
    assert not (tmp_path / "hub.toml").exists()


def test_declare_missing_records_what_reuse_needs(zoo, digit_experts, digit_sdag, tmp_path,
                                                  monkeypatch):
    low = digit_experts[0]
    path = write(zoo / "hub.toml", '[[expert]]\nsource = "torch:tests.hub._factories:mlp"\n'
                 'weights = "weights/low.safetensors"\nfactory_kwargs = { n_outputs = 5 }\n'
                 'input_size = [8, 8]\nchannels = 1\n')
    start = len(_factories.BUILT)
    hub = ModelHub.from_toml(path)
    assert len(_factories.BUILT) == start             # reading the file builds nothing
    hub.to_toml(path, declare_missing=True)
    assert len(_factories.BUILT) - start == 1        # one build told both values
    table = tomllib.loads(path.read_text())["expert"][0]
    assert (table["name"], table["n_outputs"], table["fingerprint"]) == (
        "low", 5, low.fingerprint)

    cache = tmp_path / "labels"
    ModelLabeler(digit_sdag, cache_dir=cache, verbose=0).fit(ModelHub.from_toml(path))
    start = len(_factories.BUILT)
    relabelled = ModelLabeler(digit_sdag, cache_dir=cache, verbose=0).fit(
        ModelHub.from_toml(path))
    assert len(_factories.BUILT) == start and relabelled.n_forward_images_ == 0


def test_awkward_strings_survive_the_round_trip(tmp_path):
    names = ['say "cheese"', "back\\slash", "two\nlines", "tab\there", "del\x7f", "größe, 大"]
    expert = LazyExpert(FACTORY, name='quoted "name"\\', n_outputs=len(names),
                        head_names=names, input_size=[8, 8], mean=0.5, std=1e-3,
                        factory_kwargs={"n_outputs": len(names), "hidden": 4})
    ModelHub([expert]).to_toml(tmp_path / "hub.toml")
    back = ModelHub.from_toml(tmp_path / "hub.toml")[0]
    assert back.spec == expert.spec and back.head_names == names


def test_a_long_list_is_written_one_item_a_line(tmp_path):
    names = [f"class {i}" for i in range(20)]
    ModelHub([LazyExpert(FACTORY, name="wide", head_names=names)]).to_toml(tmp_path / "h.toml")
    text = (tmp_path / "h.toml").read_text()
    assert '    "class 7",\n' in text
    assert tomllib.loads(text)["expert"][0]["head_names"] == names


def test_create_expert_and_a_table_build_the_same_expert(zoo, digit_experts, images):
    """One hub-file table is one create_expert call."""
    made = create_expert(FACTORY, weights=zoo / "weights" / "low.safetensors", name="low",
                         factory_kwargs={"n_outputs": 5}, input_size=(8, 8), channels=1)
    assert isinstance(made, TorchExpert) and made.fingerprint == digit_experts[0].fingerprint
    np.testing.assert_allclose(made.logits(images), digit_experts[0].logits(images), rtol=1e-6)
