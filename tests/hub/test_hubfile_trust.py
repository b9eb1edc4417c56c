"""Hub files read as data: no import on reading, code sources gated by consent, a module
beside one's own hub file importable, paths inside the file's folder relative and others
absolute."""

import sys

import numpy as np
import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from skmll import ModelHub
from skmll.hub import ExpertError, LazyExpert
from skmll.hub._hubfile import read_hub_file

MODULE = '''import torch

BUILT = []


def flip(n):
    BUILT.append(n)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, n))
'''


@pytest.fixture
def shelf(tmp_path):
    (tmp_path / "shelf_nets.py").write_text(MODULE)
    (tmp_path / "hub.toml").write_text(
        '[[expert]]\nname = "flip"\nsource = "torch:shelf_nets:flip"\n'
        'factory_kwargs = {n = 3}\ninput_size = [4, 4]\n')
    yield tmp_path
    sys.modules.pop("shelf_nets", None)


def test_reading_imports_nothing_and_refuses_to_build_without_consent(shelf):
    hub = read_hub_file(shelf / "hub.toml", trust_code=False)
    assert "shelf_nets" not in sys.modules
    (expert,) = hub
    assert expert.imports_code and "--trust-code" in expert.unresolved()
    with pytest.raises(ExpertError, match=r"'torch:shelf_nets:flip' imports and runs code.*"
                                          r"hub\.toml.*trust_code=True"):
        expert.load()
    assert "shelf_nets" not in sys.modules


def test_ones_own_hub_file_imports_a_module_beside_it(shelf):
    hub = ModelHub.from_toml(shelf / "hub.toml")
    assert hub["flip"].unresolved() is None
    out = hub["flip"].logits(np.zeros((2, 4, 4, 3), np.float32))
    assert out.shape == (2, 3) and sys.modules["shelf_nets"].BUILT == [3]
    assert not (shelf / "__pycache__").exists()
    assert str(shelf) not in sys.path                 # the folder was searched for that build


def test_a_missing_module_is_named_with_where_it_was_looked_for(shelf):
    (shelf / "shelf_nets.py").unlink()
    (expert,) = ModelHub.from_toml(shelf / "hub.toml")
    assert "module 'shelf_nets'" in expert.unresolved()
    with pytest.raises(ExpertError, match=r"not installed nor beside its hub file \(.*"
                                          r"shelf_nets\.py\)"):
        expert.load()


def test_data_sources_need_no_consent_and_name_missing_files(tmp_path):
    (tmp_path / "hub.toml").write_text('[[expert]]\nname = "g"\nsource = "onnx:graphs/g.onnx"\n')
    (expert,) = read_hub_file(tmp_path / "hub.toml", trust_code=False)
    assert not expert.imports_code
    assert expert.unresolved() == f"missing file(s): source={str(tmp_path / 'graphs/g.onnx')!r}"


def test_paths_inside_the_folder_are_relative_and_others_absolute(tmp_path):
    for folder in ("inside", "outside"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "m.onnx").write_bytes(b"")
    hub = ModelHub([LazyExpert(f"onnx:{tmp_path / folder / 'm.onnx'}", name=folder)
                    for folder in ("inside", "outside")])
    hub.to_toml(tmp_path / "inside" / "hub.toml")
    tables = tomllib.loads((tmp_path / "inside" / "hub.toml").read_text())["expert"]
    assert [t["source"] for t in tables] == ["onnx:m.onnx", f"onnx:{tmp_path / 'outside/m.onnx'}"]
    moved = hub["outside"].relocated({"source": tmp_path / "inside" / "m.onnx"})
    assert moved.source == f"onnx:{tmp_path / 'inside' / 'm.onnx'}" and moved.name == "outside"
