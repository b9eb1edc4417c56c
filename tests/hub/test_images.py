"""Image input: one reading rule for arrays, full-depth 16-bit pixels, per-size groups."""

import numpy as np
import pytest
import torch
from PIL import Image

from skmll.hub import MixedSizeBatch, as_image_batch, map_size_groups, preprocess

# --- which arrays are images, and how they are read ---------------------------------------------


def test_one_rgb_image_is_refused_with_the_ways_to_pass_it():
    """(H, W, 3) used to be read as H grayscale images 3 pixels wide: 16 predictions for one."""
    photo = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"ambiguous: one \(H, W, C\) image.*X\[None\]"):
        as_image_batch(photo)
    assert as_image_batch(photo[None]).shape == (1, 16, 16, 3)
    assert as_image_batch([photo]).shape == (1, 16, 16, 3)
    with pytest.raises(ValueError, match="ambiguous"):   # (H, W, 1) and RGBA alike
        as_image_batch(photo[..., :1])
    np.testing.assert_array_equal(as_image_batch(photo[..., 0][None]),   # a gray batch of one
                                  as_image_batch(photo[..., :1][None]))


@pytest.mark.parametrize("shape, message", [
    ((2, 3, 20, 20), r"last axis.*axis 1 looks like channels \(NCHW\).*transpose\(0, 2, 3, 1\)"),
    ((2, 3, 20, 4), r"3 pixel\(s\) tall with 4 channels last, or 3 channels first \(NCHW\)"),
    ((2, 1, 20, 3), r"ambiguous"),
    ((2, 20, 20, 7), r"1, 3 or 4 channels in the last axis; got shape \(2, 20, 20, 7\)$"),
])
def test_channels_first_arrays_are_refused(shape, message):
    """NCHW (2, 3, H, 4) used to pass as RGBA images 3 pixels tall."""
    with pytest.raises(ValueError, match=message):
        as_image_batch(np.zeros(shape, np.uint8))


def test_data_of_a_declared_layout_is_read_channels_last_without_refusal():
    """A SemanticDAG declares (n, H, W) gray and 4-D channels last for its data."""
    gray = np.arange(2 * 5 * 4, dtype=np.uint8).reshape(2, 5, 4)
    batch = as_image_batch(gray, assume_channels_last=True)
    np.testing.assert_allclose(batch[..., 0], gray / 255.0, rtol=1e-6)
    tiny_rgba = np.zeros((2, 3, 6, 4), np.uint8)
    assert as_image_batch(tiny_rgba, assume_channels_last=True).shape == (2, 3, 6, 3)
    with pytest.raises(ValueError, match=r"last axis; got shape \(2, 3, 6, 6\)$"):
        as_image_batch(np.zeros((2, 3, 6, 6), np.uint8), assume_channels_last=True)


def test_torch_tensors_follow_the_same_rule():
    nchw = torch.rand(2, 3, 24, 20)
    with pytest.raises(ValueError, match="NCHW"):
        as_image_batch(nchw)
    np.testing.assert_array_equal(as_image_batch(nchw.permute(0, 2, 3, 1)),
                                  nchw.permute(0, 2, 3, 1).numpy())


def test_list_items_are_single_images_read_channels_last():
    rng = np.random.default_rng(1)
    chw = rng.integers(0, 256, (3, 12, 4), dtype=np.uint8)
    with pytest.raises(ValueError, match="image 1 .*ambiguous"):
        as_image_batch([np.zeros((12, 12), np.uint8), chw])
    with pytest.raises(ValueError, match=r"image 0 .*axis 0 looks like channels"):
        as_image_batch([rng.integers(0, 256, (3, 12, 12), dtype=np.uint8)])
    gray = rng.integers(0, 256, (7, 3), dtype=np.uint8)   # (H, W) in a list: one gray image
    np.testing.assert_allclose(as_image_batch([gray])[0, ..., 1], gray / 255.0, rtol=1e-6)


def test_sixteen_bit_png_and_uint16_arrays_keep_their_depth(tmp_path):
    """PIL's convert("RGB") saturated 16-bit pixels: anything above 255 of 65535 came out white."""
    ramp = np.linspace(0, 65535, 40 * 30).astype(np.uint16).reshape(40, 30)
    path = tmp_path / "depth.png"
    Image.fromarray(ramp).save(path)
    with Image.open(path) as img:
        assert img.mode.startswith("I;16")     # the file really is 16-bit
    expected = ramp / 65535.0
    from_file = as_image_batch([path])
    np.testing.assert_allclose(from_file[0, ..., 0], expected, atol=1e-6)
    np.testing.assert_array_equal(from_file[..., 0], from_file[..., 2])
    assert from_file.mean() == pytest.approx(0.5, abs=1e-3)      # not white
    with Image.open(path) as img:
        np.testing.assert_array_equal(as_image_batch([img]), from_file)
    np.testing.assert_allclose(as_image_batch(ramp[None])[0, ..., 0], expected, atol=1e-6)
    rgb16 = np.stack([ramp, ramp // 2, 65535 - ramp], axis=-1)
    np.testing.assert_allclose(as_image_batch(rgb16[None])[0], rgb16 / 65535.0, atol=1e-6)


def test_pixels_without_a_known_range_are_refused():
    with pytest.raises(TypeError, match="got dtype int32"):
        as_image_batch(np.zeros((2, 8, 8), np.int32))
    with pytest.raises(TypeError, match="PIL mode 'I'.*convert it"):
        as_image_batch([Image.fromarray(np.zeros((8, 8), np.int32))])
    as_float = Image.fromarray(np.full((8, 8), 0.25, np.float32))   # mode "F": floats in [0, 1]
    np.testing.assert_allclose(as_image_batch([as_float]), 0.25)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        as_image_batch([Image.fromarray(np.full((8, 8), 3.0, np.float32))])


@pytest.mark.parametrize("X, error, message", [
    (None, TypeError, "images must be an array .*; got None"),
    (7, TypeError, "images must be an array .*; got 7"),
    ({"a": np.zeros((8, 8))}, TypeError, "images must be an array .*; got {'a'"),
    (b"\x89PNG", TypeError, "images must be an array"),
    (Image.new("RGB", (8, 8)), TypeError, r"single PIL image \(pass \[image\]\)"),
    ([np.zeros((8, 8)), None], TypeError, "image 1 must be a PIL image, .*got None"),
    ([np.zeros((8, 8)), 3.5], TypeError, "image 1 must be a PIL image, .*got 3.5"),
    ([np.zeros((2, 8, 8, 3))], TypeError, r"image 0 .*got ndarray of shape \(2, 8, 8, 3\)"),
])
def test_non_images_get_an_error_naming_what_was_given(X, error, message):
    with pytest.raises(error, match=message):
        as_image_batch(X)


# --- images of different sizes ------------------------------------------------------------------


@pytest.fixture
def mixed():
    rng = np.random.default_rng(2)
    shapes = [(9, 14), (20, 11), (9, 14), (6, 6), (20, 11)]
    return [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for shape in shapes]


def test_images_of_different_sizes_keep_their_size(mixed):
    """A mixed list used to be resized to 224 x 224 and then again by each expert."""
    batch = as_image_batch(mixed)
    assert isinstance(batch, MixedSizeBatch) and len(batch) == 5
    assert batch.sizes == [image.shape[:2] for image in mixed]
    for image, got in zip(mixed, batch):
        np.testing.assert_allclose(got, image / 255.0, rtol=1e-6)
    groups = batch.size_groups()
    assert [rows.tolist() for rows, _ in groups] == [[0, 2], [1, 4], [3]]
    assert [group.shape for _, group in groups] == [(2, 9, 14, 3), (2, 20, 11, 3), (1, 6, 6, 3)]
    ragged = np.empty(len(mixed), dtype=object)   # a ragged object array is a list of images
    ragged[:] = mixed
    assert as_image_batch(ragged).sizes == batch.sizes
    assert as_image_batch(batch) is batch


def test_mixed_batch_slices_like_an_array(mixed):
    batch = as_image_batch(mixed)
    same_size = batch[[0, 2]]
    assert isinstance(same_size, np.ndarray) and same_size.shape == (2, 9, 14, 3)
    assert batch[1:3].sizes == [(20, 11), (9, 14)]
    assert batch[np.array([False, True, False, True, True])].sizes == [(20, 11), (6, 6), (20, 11)]
    np.testing.assert_array_equal(batch[-1], mixed[-1] / np.float32(255))
    with pytest.raises(IndexError, match="boolean index"):
        batch[np.array([True, False])]
    with pytest.raises(TypeError, match="not one array; take its same-size groups"):
        np.asarray(batch)
    assert as_image_batch(mixed, image_size=(8, 10)).shape == (5, 8, 10, 3)


def test_map_size_groups_puts_rows_back_in_order(mixed):
    batch = as_image_batch(mixed)
    sizes = []

    def height_and_width(group):
        sizes.append(group.shape[1:3])
        return np.repeat([[group.shape[1], group.shape[2]]], len(group), axis=0)

    out = map_size_groups(height_and_width, batch)
    assert out.tolist() == [list(shape[:2]) for shape in (m.shape for m in mixed)]
    assert sorted(sizes) == [(6, 6), (9, 14), (20, 11)]   # one call per size
    as_tensor = map_size_groups(lambda group: torch.from_numpy(group.mean(axis=(1, 2, 3))), batch)
    np.testing.assert_allclose(as_tensor.numpy(), [m.mean() / 255 for m in mixed], rtol=1e-5)


def test_preprocess_of_a_mixed_batch_is_each_image_preprocessed_alone(mixed):
    batch = as_image_batch(mixed)
    together = preprocess(batch, input_size=(16, 16), mean=0.5, std=0.25, channels=1)
    assert together.shape == (5, 1, 16, 16)
    for i, image in enumerate(mixed):
        alone = preprocess(as_image_batch([image]), input_size=(16, 16), mean=0.5, std=0.25,
                           channels=1)
        torch.testing.assert_close(together[i:i + 1], alone, rtol=0, atol=0)
