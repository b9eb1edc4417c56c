"""Image input: one canonical batch format, and the per-expert preprocessing from it.

Every image that enters skmll (``predict`` input, SDAG representative data) is turned once into
a float32 array ``(n, H, W, 3)`` with values in [0, 1]. Experts take that batch and resize,
convert channels and normalise inside (``preprocess``), so a batch is decoded once however many
experts read it.
"""

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

_GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 luma


def _to_rgb_float(array, what):
    """One array of rank 3 or 4 (batch) -> float32 (n, H, W, 3) in [0, 1], validated."""
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    elif array.dtype == np.bool_:
        array = array.astype(np.float32)
    elif np.issubdtype(array.dtype, np.floating):
        # Checked before the cast to float32, which would turn values beyond its range into inf.
        if not np.isfinite(array).all():
            raise ValueError(f"{what} contain NaN or infinite values")
        lo, hi = float(array.min(initial=0.0)), float(array.max(initial=0.0))
        if lo < -1e-6 or hi > 1 + 1e-6:
            raise ValueError(
                f"float {what} must lie in [0, 1]; got values in [{lo:.3g}, {hi:.3g}] "
                "(pass uint8 images, or divide by 255)"
            )
        array = array.astype(np.float32, copy=False)
    else:
        raise TypeError(f"{what} must be uint8, bool or floating point; got dtype {array.dtype}")
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4:
        raise ValueError(
            f"{what} must have shape (n, H, W) or (n, H, W, C); got shape {array.shape}"
        )
    channels = array.shape[-1]
    if channels == 1:
        array = np.repeat(array, 3, axis=-1)
    elif channels == 4:
        array = array[..., :3]  # drop alpha
    elif channels != 3:
        raise ValueError(
            f"{what} must have 1, 3 or 4 channels in the last axis; got shape {array.shape}"
        )
    if 0 in array.shape:
        raise ValueError(f"{what} are empty: shape {array.shape}")
    return np.ascontiguousarray(array)


def _decode_one(item, index):
    """A path, PIL image or per-image array -> an (H, W, C) array."""
    if isinstance(item, (str, os.PathLike)):
        from PIL import Image

        try:
            with Image.open(item) as img:
                return np.asarray(img.convert("RGB"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"image {index} ({item}) could not be read: {exc}") from exc
    if hasattr(item, "convert") and hasattr(item, "size"):  # a PIL image
        return np.asarray(item.convert("RGB"))
    array = np.asarray(item)
    if array.ndim not in (2, 3):
        raise ValueError(f"image {index} must have shape (H, W) or (H, W, C); got {array.shape}")
    return array


def _resize_rgb(batch, size):
    """Bilinear, antialiased resize of a float (n, H, W, 3) batch to ``size`` = (H, W)."""
    if batch.shape[1:3] == tuple(size):
        return batch
    tensor = torch.from_numpy(np.array(batch, dtype=np.float32)).permute(0, 3, 1, 2)
    tensor = F.interpolate(tensor, size=tuple(size), mode="bilinear", antialias=True,
                           align_corners=False)
    return tensor.clamp_(0, 1).permute(0, 2, 3, 1).contiguous().numpy()


def as_image_batch(X, *, image_size=None, what="images"):
    """Validate and convert images to a float32 batch ``(n, H, W, 3)`` in [0, 1].

    Parameters
    ----------
    X : ndarray of shape (n, H, W) or (n, H, W, C), or list of PIL images, paths or arrays
        uint8 pixels (0-255) or floats in [0, 1]. Grayscale is replicated to RGB, alpha dropped.
    image_size : (int, int) or None
        Resize every image to this (H, W). When None, images of different sizes in a list are
        resized to 224 x 224; same-size images keep their size.
    what : str
        Name used in error messages.

    Returns
    -------
    batch : ndarray of shape (n, H, W, 3), float32
    """
    if isinstance(X, np.ndarray) or torch.is_tensor(X):
        X = np.asarray(X)
        if X.ndim < 3:
            raise ValueError(
                f"{what} must have shape (n, H, W) or (n, H, W, C); got shape {X.shape}"
            )
        batch = _to_rgb_float(X, what)
    else:
        if isinstance(X, (str, os.PathLike)):
            raise TypeError(f"{what} must be an array or a list of images; got a single path {X!r}")
        items = list(X)
        if not items:
            raise ValueError(f"{what} are empty: got an empty list")
        arrays = [_to_rgb_float(_decode_one(item, i)[None], f"image {i}")
                  for i, item in enumerate(items)]
        sizes = {a.shape[1:3] for a in arrays}
        target = image_size if image_size is not None else (
            next(iter(sizes)) if len(sizes) == 1 else (224, 224))
        batch = np.concatenate([_resize_rgb(a, target) for a in arrays])
    if image_size is not None:
        batch = _resize_rgb(batch, image_size)
    return batch


def preprocess(images, *, input_size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), channels=3,
               scale=1.0, layout="NCHW"):
    """Turn a canonical batch into an expert's input tensor.

    Parameters
    ----------
    images : ndarray (n, H, W, 3), float32 in [0, 1]
    input_size : (int, int)
        The expert's input (H, W).
    mean, std : sequence of float
        Per-channel normalisation applied after scaling: ``(x * scale - mean) / std``.
    channels : {1, 3}
        1 converts to luma (BT.601) for grayscale experts.
    scale : float
        Multiplier before normalisation (255 for experts trained on raw 0-255 pixels).
    layout : {"NCHW", "NHWC"}

    Returns
    -------
    torch.Tensor, float32, in the requested layout.
    """
    tensor = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).permute(0, 3, 1, 2)
    if tuple(tensor.shape[2:]) != tuple(input_size):
        tensor = F.interpolate(tensor, size=tuple(input_size), mode="bilinear", antialias=True,
                               align_corners=False)
    if channels == 1:
        tensor = torch.tensordot(tensor, torch.from_numpy(_GRAY_WEIGHTS), dims=([1], [0]))[:, None]
    elif channels != 3:
        raise ValueError(f"channels must be 1 or 3; got {channels}")
    mean, std = (_per_channel(v, channels) for v in (mean, std))
    tensor = (tensor * scale - mean) / std
    if layout == "NHWC":
        tensor = tensor.permute(0, 2, 3, 1)
    elif layout != "NCHW":
        raise ValueError(f"layout must be 'NCHW' or 'NHWC'; got {layout!r}")
    return tensor.contiguous()


def _per_channel(values, channels):
    """Normalisation constants shaped (1, channels, 1, 1); RGB constants average for gray."""
    values = np.atleast_1d(np.asarray(values, dtype=np.float32))
    if channels == 1 and values.size > 1:
        values = values.mean(keepdims=True)
    values = np.broadcast_to(values, (channels,))
    return torch.from_numpy(values.copy()).reshape(1, channels, 1, 1)


def is_image_path(path):
    """True for file names with a common image extension."""
    return Path(path).suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp",
                                         ".tif", ".tiff", ".ppm", ".pgm"}
