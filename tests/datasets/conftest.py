import pytest
import torch

from skmll.datasets import make_world


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # Tests run as two pytest workers on two cores: two torch threads each would oversubscribe
    # them, which makes these small forward passes 10-20x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def world():
    """A small world: 500 Fashion-MNIST test images."""
    return make_world(fashion_test=500)
