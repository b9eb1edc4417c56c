"""Image input: one canonical batch format, and the per-expert preprocessing from it.

Every image that enters skmll (``predict`` input, SDAG representative data) is turned once into
float32 RGB pixels in [0, 1], channels last, at its own size: an array ``(n, H, W, 3)`` when the
images share a size, else a :class:`MixedSizeBatch` that keeps each image at its size and hands
out same-size groups. Experts take such a batch and resize, convert channels and normalise
inside (``preprocess``), so a batch is decoded once however many experts read it, and an image
is processed the same way whatever else is in its batch.

A grayscale batch keeps its one plane: its RGB array is a read-only view of it with the three
channels sharing memory (channel stride 0), so nothing is copied until an expert asks for
channels. ``preprocess`` resizes the plane alone and makes three channels (or luma) only at the
expert's input size; an expert outside skmll's adapters receives a real RGB copy.

Arrays are read channels last, with one rule and no guessing:

- ``(n, H, W)``: n grayscale images. When W is 1, 3 or 4 this could be a single ``(H, W, C)``
  image, so it is refused with a message saying how to pass either.
- ``(n, H, W, C)`` with C in {1, 3, 4} (gray, RGB, RGBA; alpha is dropped). When H is also 1, 3
  or 4 the array could be NCHW, so it is refused; any other C is refused, with a hint to
  transpose when axis 1 looks like channels.
- Pixels: uint8 (0-255), uint16 (0-65535, e.g. 16-bit PNG), bool, or floats in [0, 1].

An image file is refused before it is decoded when it has more pixels than
:func:`set_max_image_pixels` allows (by default PIL's ``MAX_IMAGE_PIXELS``, 89,478,485): a small
compressed file can declare a huge image (a 140 KB PNG of 12,000 x 12,000 pixels decodes to
over 400 MB, and to 1.7 GB as float32 RGB).
"""

import functools
import numbers
import os
import queue
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

_GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 luma
_CHANNELS = (1, 3, 4)   # gray, RGB, RGBA
_EXPECTED = ("an array of shape (n, H, W) or (n, H, W, C), channels last, or a list of PIL "
             "images, image paths or arrays of shape (H, W) or (H, W, C)")
# Shared by every thread: image files are decoded by a prefetching thread.
_PIXEL_LIMIT = {"max_pixels": 1024 * 1024 * 1024 // 4 // 3}   # PIL's default MAX_IMAGE_PIXELS


def set_max_image_pixels(max_pixels):
    """Set how many pixels an image file may have to be decoded; returns the previous limit.

    A file over the limit is refused before its pixels are decoded, with an error naming it.
    The limit applies to every later read of image files in this process (as PIL's
    ``Image.MAX_IMAGE_PIXELS`` does), including the command line's ``--max-image-pixels``.

    Parameters
    ----------
    max_pixels : int
        Width times height; at least 1.

    Returns
    -------
    int

    Examples
    --------
    >>> previous = set_max_image_pixels(200_000_000)
    >>> set_max_image_pixels(previous)
    200000000
    """
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, numbers.Integral) \
            or max_pixels < 1:
        raise ValueError(f"max_pixels must be an int >= 1; got {max_pixels!r}")
    previous, _PIXEL_LIMIT["max_pixels"] = _PIXEL_LIMIT["max_pixels"], int(max_pixels)
    return previous


class MixedSizeBatch(Sequence):
    """Canonical images of different sizes, each kept at its own size.

    :func:`as_image_batch` returns one when its images do not share a size. It behaves as a
    read-only sequence of ``(H, W, 3)`` float32 images: ``len``, an int index gives one image,
    and a slice, an integer array or a boolean mask gives a batch of those images (an ndarray
    when they share a size). It is not an array: :meth:`size_groups` gives the same-size
    groups, which is how experts receive it (:func:`map_size_groups`).

    Parameters
    ----------
    images : sequence of ndarray of shape (H, W, 3), float32 in [0, 1]

    Examples
    --------
    >>> import numpy as np
    >>> batch = MixedSizeBatch([np.zeros((4, 6, 3), np.float32), np.ones((5, 5, 3), np.float32),
    ...                         np.zeros((4, 6, 3), np.float32)])
    >>> len(batch), batch.sizes
    (3, [(4, 6), (5, 5), (4, 6)])
    >>> [(rows.tolist(), group.shape) for rows, group in batch.size_groups()]
    [([0, 2], (2, 4, 6, 3)), ([1], (1, 5, 5, 3))]
    >>> batch[::2].shape
    (2, 4, 6, 3)
    """

    def __init__(self, images):
        images = [np.asarray(image, dtype=np.float32) for image in images]
        by_size = {}
        for row, image in enumerate(images):
            if image.ndim != 3 or image.shape[-1] != 3:
                raise ValueError(f"image {row} must have shape (H, W, 3); got {image.shape}")
            by_size.setdefault(image.shape, []).append(row)
        self._groups = [(np.array(rows), _stack([images[r] for r in rows]))
                        for rows in by_size.values()]
        self._where = [None] * len(images)   # row -> (group, position in the group)
        for g, (rows, _) in enumerate(self._groups):
            for position, row in enumerate(rows):
                self._where[row] = (g, position)

    def __len__(self):
        return len(self._where)

    def __getitem__(self, key):
        if isinstance(key, numbers.Integral):
            g, position = self._where[key]
            return self._groups[g][1][position]
        rows = range(len(self))[key] if isinstance(key, slice) else self._rows(key)
        return stack_images([self[row] for row in rows])

    def _rows(self, key):
        key = np.asarray(key)
        if key.dtype == np.bool_:
            if key.shape != (len(self),):
                raise IndexError(f"boolean index of shape {key.shape} for {len(self)} images")
            return np.flatnonzero(key)
        if key.ndim != 1 or not np.issubdtype(key.dtype, np.integer):
            raise IndexError("index with an int, a slice, a 1-d integer array or a boolean mask; "
                             f"got {key.dtype} of shape {key.shape}")
        return key

    @property
    def sizes(self):
        """list of (H, W): each image's size, in order."""
        return [self._groups[g][1].shape[1:3] for g, _ in self._where]

    def size_groups(self):
        """``[(rows, batch)]``: the row numbers of each size and their ``(k, H, W, 3)`` batch.

        Groups come in the order of their first image.
        """
        return list(self._groups)

    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            f"a MixedSizeBatch holds images of {len(self._groups)} sizes and is not one array; "
            "take its same-size groups with size_groups() or skmll.hub.map_size_groups")

    def __repr__(self):
        sizes = ", ".join(f"{len(rows)} of {batch.shape[1]}x{batch.shape[2]}"
                          for rows, batch in self._groups)
        return f"MixedSizeBatch({sizes})"


def stack_images(images):
    """Canonical ``(H, W, 3)`` images as one batch: an ndarray when they share a size, else a
    :class:`MixedSizeBatch`."""
    images = list(images)
    if len({image.shape for image in images}) == 1:
        return _stack(images)
    return MixedSizeBatch(images)


def _stack(images):
    """Same-size canonical images as one array; gray images stay one plane (see gray_plane)."""
    planes = [gray_plane(image[None]) for image in images]
    if all(plane is not None for plane in planes):
        return _gray_as_rgb(np.concatenate(planes))
    return np.stack(images)


def _gray_as_rgb(plane):
    """A float32 ``(..., 1)`` plane seen as RGB: three channels sharing it, read-only."""
    return np.broadcast_to(plane, (*plane.shape[:-1], 3))


def gray_plane(images):
    """The ``(n, H, W, 1)`` plane behind a gray batch from :func:`as_image_batch`, else None.

    A gray batch's three channels are one plane in memory (channel stride 0); any other array,
    including an RGB copy whose channels happen to be equal, gives None.

    Examples
    --------
    >>> import numpy as np
    >>> gray_plane(as_image_batch(np.zeros((2, 5, 5), np.uint8))).shape
    (2, 5, 5, 1)
    >>> print(gray_plane(np.zeros((2, 5, 5, 3), np.float32)))
    None
    """
    if (isinstance(images, np.ndarray) and images.ndim == 4 and images.shape[-1] == 3
            and images.strides[-1] == 0):
        return images[..., :1]
    return None


def size_groups(images):
    """``[(rows, batch)]`` same-size groups of a canonical batch (one group for an array)."""
    if isinstance(images, MixedSizeBatch):
        return images.size_groups()
    return [(np.arange(len(images)), images)]


def map_size_groups(function, images):
    """``function`` applied to each same-size group of ``images``, rows back in their order.

    ``function`` takes a ``(k, H, W, 3)`` array and returns k rows (ndarray or tensor). An
    array batch is passed as it is, in one call.

    Examples
    --------
    >>> import numpy as np
    >>> batch = as_image_batch([np.zeros((4, 4), np.uint8), np.full((6, 2), 255, np.uint8),
    ...                         np.zeros((4, 4), np.uint8)])
    >>> map_size_groups(lambda group: group.mean(axis=(1, 2, 3)), batch).tolist()
    [0.0, 1.0, 0.0]
    """
    results = [(rows, function(batch)) for rows, batch in size_groups(images)]
    if len(results) == 1:
        return results[0][1]
    if not results:
        raise ValueError("no images to process: the batch is empty")
    # Stacked group by group, row p holds image rows[p]; the inverse permutation restores order.
    order = np.argsort(np.concatenate([rows for rows, _ in results]), kind="stable")
    parts = [part for _, part in results]
    if torch.is_tensor(parts[0]):
        return torch.cat(parts)[torch.from_numpy(order)]
    return np.concatenate([np.asarray(part) for part in parts])[order]


def _pixels_to_float(array, what):
    """Pixel values -> float32 in [0, 1], by dtype; anything without a known range is refused."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:   # 16-bit PNG and TIFF
        return array.astype(np.float32) / 65535.0
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.floating):
        # Checked before the cast to float32, which would turn values beyond its range into inf.
        if not np.isfinite(array).all():
            raise ValueError(f"{what} contain NaN or infinite values")
        lo, hi = float(array.min(initial=0.0)), float(array.max(initial=0.0))
        if lo < -1e-6 or hi > 1 + 1e-6:
            raise ValueError(
                f"float {what} must lie in [0, 1]; got values in [{lo:.3g}, {hi:.3g}] "
                "(pass uint8 images, or divide by 255)"
            )
        return array.astype(np.float32, copy=False)
    raise TypeError(f"{what} must be uint8 (0-255), uint16 (0-65535), bool or floats in [0, 1]; "
                    f"got dtype {array.dtype} (cast to uint8 if the values are 0-255 pixels)")


def _check_batch_layout(shape, what, assume_channels_last=False):
    """Refuse array shapes that are not, or not only, a channels-last batch."""
    if len(shape) == 3 and shape[-1] in _CHANNELS and not assume_channels_last:
        raise ValueError(
            f"{what} of shape {shape} are ambiguous: one (H, W, C) image, or {shape[0]} grayscale "
            f"images {shape[2]} pixel(s) wide? Pass one image as X[None] (or in a list), a "
            "grayscale batch as X[..., None]")
    if len(shape) not in (3, 4):
        raise ValueError(f"{what} must be {_EXPECTED}; got an array of shape {shape}")
    if len(shape) == 4:
        _check_channels_last(shape, what, None if assume_channels_last else shape[1])


def _check_channels_last(shape, what, height):
    """``shape`` ends in channels; ``height`` is the axis an NCHW reading would call channels
    (None: the layout is known to be channels last)."""
    if shape[-1] not in _CHANNELS:
        hint = (f"; axis {len(shape) - 3} looks like channels (NCHW): transpose to channels last "
                "first, e.g. X.transpose(0, 2, 3, 1)" if height in _CHANNELS else "")
        raise ValueError(f"{what} must have 1, 3 or 4 channels in the last axis; got shape "
                         f"{shape}{hint}")
    if height in _CHANNELS:
        raise ValueError(
            f"{what} of shape {shape} are ambiguous: {height} pixel(s) tall with {shape[-1]} "
            f"channels last, or {height} channels first (NCHW)? skmll reads channels last and "
            "refuses images 1, 3 or 4 pixels tall as arrays: transpose NCHW arrays to channels "
            "last, or pass such small images as PIL images")


def _to_rgb(array, what):
    """A validated channels-last float array (n, H, W, C) -> (n, H, W, 3): contiguous, or the
    gray plane seen as RGB."""
    if 0 in array.shape:
        raise ValueError(f"{what} are empty: shape {array.shape}")
    channels = array.shape[-1]
    if channels == 1:
        return _gray_as_rgb(np.ascontiguousarray(array))
    if channels == 4:
        array = array[..., :3]  # drop alpha
    return np.ascontiguousarray(array)


def _array_batch(array, what, assume_channels_last):
    """An array of images with a leading batch axis -> float32 (n, H, W, 3)."""
    _check_batch_layout(array.shape, what, assume_channels_last)
    array = _pixels_to_float(array, what)
    return _to_rgb(array if array.ndim == 4 else array[..., None], what)


def _pil_pixels(img, what):
    """A PIL image's pixels: 16-bit modes at full depth, float mode as is, the rest as RGB."""
    if img.mode.startswith("I;16"):
        return np.asarray(img).astype(np.uint16)   # native byte order whatever the file's
    if img.mode == "F":
        return np.asarray(img)
    if img.mode == "I":
        raise TypeError(f"{what} has PIL mode 'I' (32-bit integers), whose pixel range is "
                        "unknown; convert it to 'I;16', 'L' or 'RGB' first")
    return np.asarray(img.convert("RGB"))


def _decode_one(item, what):
    """A path, PIL image or per-image array -> a validated (H, W, C) array, channels last."""
    if isinstance(item, (str, os.PathLike)):
        from PIL import Image

        try:
            with Image.open(item) as img:   # reads the header only
                _check_pixel_count(img, item, what)
                return _pil_pixels(img, what)
        except _TooManyPixels:
            raise
        except (OSError, ValueError) as exc:
            raise ValueError(f"{what} ({item}) could not be read: {exc}") from exc
    if hasattr(item, "convert") and hasattr(item, "mode"):  # a PIL image
        return _pil_pixels(item, what)
    array = item.detach().cpu().numpy() if torch.is_tensor(item) else np.asarray(item)
    if array.dtype == object or array.ndim not in (2, 3):
        raise TypeError(f"{what} must be a PIL image, an image path or an array (H, W) or "
                        f"(H, W, C); got {_describe(item)}")
    if array.ndim == 3:
        _check_channels_last(array.shape, what, array.shape[0])
    return array


class _TooManyPixels(ValueError):
    """An image file has more pixels than the limit."""


def _check_pixel_count(img, path, what):
    width, height = img.size
    limit = _PIXEL_LIMIT["max_pixels"]
    if width * height > limit:
        raise _TooManyPixels(f"{what} ({path}) has {width} x {height} = {width * height:,} "
                             f"pixels, over the limit of {limit:,} that guards against "
                             "decompression bombs; if you trust the file, raise the limit "
                             "(--max-image-pixels, or skmll.hub.set_max_image_pixels)")


def _list_batch(items, what, first_index=0):
    """Listed images (paths, PIL images, arrays) -> a canonical batch; errors give each item's
    position in the whole list, ``first_index`` being the position of ``items[0]``."""
    return stack_images([_item_image(item, first_index + i) for i, item in enumerate(items)])


def _item_image(item, index):
    """One list item -> float32 (H, W, 3)."""
    what = f"image {index}"
    array = _pixels_to_float(_decode_one(item, what), what)
    return _to_rgb(array[None] if array.ndim == 3 else array[None, ..., None], what)[0]


def _describe(value):
    shape = getattr(value, "shape", None)
    return f"{type(value).__name__} of shape {shape}" if shape is not None else repr(value)[:80]


def _check_container(X, what):
    """Refuse what cannot be a collection of images, naming what was given."""
    if isinstance(X, (str, os.PathLike)):
        raise TypeError(f"{what} must be {_EXPECTED}; got a single path {X!r} (pass [path])")
    if hasattr(X, "convert") and hasattr(X, "mode"):
        raise TypeError(f"{what} must be {_EXPECTED}; got a single PIL image (pass [image])")
    if isinstance(X, (bytes, Mapping)) or not isinstance(X, Iterable):
        raise TypeError(f"{what} must be {_EXPECTED}; got {_describe(X)}")


def _listed(X, what):
    """The images of a container that is not an array, as a non-empty list."""
    _check_container(X, what)
    items = list(X)
    if not items:
        raise ValueError(f"{what} are empty: got an empty list")
    return items


def iter_image_batches(X, batch_size, *, what="images"):
    """Consecutive canonical batches of at most ``batch_size`` of the images ``X``, in order.

    An array (or tensor) is converted at once by :func:`as_image_batch` and sliced. A list
    (paths, PIL images, per-image arrays) is decoded one batch at a time by a background thread
    that works one batch ahead (:func:`prefetched`), so reading and decoding files overlaps with
    the experts' forward passes on the batch before; an unreadable file is reported as by
    :func:`as_image_batch`, with its position in the whole list, when its batch is reached.

    Parameters
    ----------
    X : images, as :func:`as_image_batch` takes them
    batch_size : int
    what : str
        Name used in error messages.

    Yields
    ------
    batch : ndarray of shape (b, H, W, 3), float32, or MixedSizeBatch

    Examples
    --------
    >>> import numpy as np
    >>> images = [np.full((4, 4), value, np.uint8) for value in (0, 51, 102, 153, 204)]
    >>> [(batch[:, 0, 0, 0] * 255).round().astype(int).tolist()
    ...  for batch in iter_image_batches(images, 2)]
    [[0, 51], [102, 153], [204]]
    """
    if isinstance(X, np.ndarray) and X.dtype == object and X.ndim == 1:
        X = list(X)   # a ragged array of images is a list of images
    if isinstance(X, (np.ndarray, MixedSizeBatch)) or torch.is_tensor(X):
        images = as_image_batch(X, what=what)
        for start in range(0, len(images), batch_size):
            yield images[start:start + batch_size]
        return
    items = _listed(X, what)
    starts = range(0, len(items), batch_size)
    yield from prefetched(_list_batch(items[start:start + batch_size], what, start)
                          for start in starts)


_DONE = object()


def prefetched(iterable, depth=1):
    """The items of ``iterable``, produced by a background thread up to ``depth`` items ahead.

    Items come in their order; an exception raised while producing an item is raised here, in
    its place, after the items before it. Closing the generator early stops the thread after
    the item it is producing. Worth it when producing an item spends its time outside the GIL
    (reading and decoding image files, NumPy and torch work), as the consumer's does.

    Examples
    --------
    >>> list(prefetched(x * x for x in range(4)))
    [0, 1, 4, 9]
    """
    slots = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(entry):   # waits for a free slot, unless the consumer has gone
        while not stop.is_set():
            try:
                slots.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in iterable:
                if not offer((True, item)):
                    return
        except BaseException as exc:   # handed to the consumer, raised in the item's place
            offer((False, exc))
            return
        offer((True, _DONE))

    worker = threading.Thread(target=produce, name="skmll-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            produced, item = slots.get()
            if not produced:
                raise item
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        worker.join()


def _resize_rgb(batch, size):
    """Bilinear, antialiased resize of a float (n, H, W, 3) batch to ``size`` = (H, W); a gray
    batch is resized as its one plane and stays gray."""
    if batch.shape[1:3] == tuple(size):
        return batch
    plane = gray_plane(batch)
    pixels = batch if plane is None else plane
    tensor = torch.from_numpy(np.array(pixels, dtype=np.float32)).permute(0, 3, 1, 2)
    tensor = F.interpolate(tensor, size=tuple(size), mode="bilinear", antialias=True,
                           align_corners=False)
    resized = tensor.clamp_(0, 1).permute(0, 2, 3, 1).contiguous().numpy()
    return resized if plane is None else _gray_as_rgb(resized)


def as_image_batch(X, *, image_size=None, what="images", assume_channels_last=False):
    """Validate and convert images to a canonical batch: float32 RGB in [0, 1], channels last.

    Each image keeps its own size unless ``image_size`` is given, so what an expert computes
    for an image never depends on the other images of the batch.

    Parameters
    ----------
    X : ndarray or tensor (n, H, W) or (n, H, W, C), or list of PIL images, paths or arrays
        Channels last (C in 1, 3, 4; grayscale is replicated to RGB, alpha dropped); uint8
        (0-255), uint16 (0-65535), bool or floats in [0, 1]. List items are single images,
        ``(H, W)`` or ``(H, W, C)``. Ambiguous shapes are refused (see the module docstring).
    image_size : (int, int) or None
        Resize every image to this (H, W); None keeps each image's size.
    what : str
        Name used in error messages.
    assume_channels_last : bool, default=False
        Read any ``(n, H, W)`` array as grayscale images and any 4-D array as channels last,
        without refusing the ambiguous shapes: for arrays whose owner has declared that layout
        (a SemanticDAG's data). The last axis of a 4-D array must still be 1, 3 or 4.

    Returns
    -------
    batch : ndarray of shape (n, H, W, 3), float32, or MixedSizeBatch
        A MixedSizeBatch when the images have different sizes and ``image_size`` is None.

    Raises
    ------
    TypeError
        For input that is not images (None, a number, a single path or PIL image, a dict) and
        for pixel dtypes with no known range.
    ValueError
        For empty, ambiguous or wrongly shaped arrays, values out of range, unreadable files.

    Examples
    --------
    >>> import numpy as np
    >>> as_image_batch(np.zeros((2, 8, 8), np.uint8)).shape
    (2, 8, 8, 3)
    >>> as_image_batch([np.zeros((8, 8), np.uint8), np.zeros((5, 7, 3), np.uint8)])
    MixedSizeBatch(1 of 8x8, 1 of 5x7)
    """
    if isinstance(X, np.ndarray) and X.dtype == object and X.ndim == 1:
        X = list(X)   # a ragged array of images is a list of images
    if isinstance(X, MixedSizeBatch):
        batch = X
    elif isinstance(X, np.ndarray) or torch.is_tensor(X):
        batch = _array_batch(X.detach().cpu().numpy() if torch.is_tensor(X) else X, what,
                             assume_channels_last)
    else:
        items = _listed(X, what)
        batch = _list_batch(items, what)
    if image_size is not None:
        batch = map_size_groups(lambda group: _resize_rgb(group, image_size), batch)
    return batch


def preprocess(images, *, input_size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), channels=3,
               scale=1.0, layout="NCHW", memory_format=torch.contiguous_format, device=None):
    """Turn a canonical batch into an expert's input tensor.

    A gray batch (see :func:`gray_plane`) is resized as its one plane; its channels are made at
    the input size, with the same arithmetic as for its RGB copy, so both give the same tensor.

    Parameters
    ----------
    images : ndarray (n, H, W, 3), float32 in [0, 1], or MixedSizeBatch
    input_size : (int, int)
        The expert's input (H, W).
    mean, std : sequence of float
        Per-channel normalisation applied after scaling: ``(x * scale - mean) / std``.
    channels : {1, 3}
        1 converts to luma (BT.601) for grayscale experts.
    scale : float
        Multiplier before normalisation (255 for experts trained on raw 0-255 pixels).
    layout : {"NCHW", "NHWC"}
    memory_format : torch.memory_format, default torch.contiguous_format
        The strides of an NCHW result: ``torch.channels_last`` hands a channels-last module its
        input without a conversion. Ignored for NHWC, which is always contiguous.
    device : str, torch.device or None
        Where the pixels are resized and normalised (None: the CPU). From the CPU to a CUDA
        device they travel from pinned memory without blocking.

    Returns
    -------
    torch.Tensor, float32, in the requested layout, on ``device``.

    Examples
    --------
    >>> import numpy as np
    >>> gray = as_image_batch(np.full((2, 8, 8), 255, np.uint8))
    >>> preprocess(gray, input_size=(4, 4), mean=0.5, std=0.5).shape
    torch.Size([2, 3, 4, 4])
    >>> rgb = np.ones((2, 8, 8, 3), np.float32)
    >>> bool((preprocess(gray, input_size=(4, 4), channels=1)
    ...       == preprocess(rgb, input_size=(4, 4), channels=1)).all())
    True
    """
    if isinstance(images, MixedSizeBatch):   # resized group by group, then one tensor
        return map_size_groups(functools.partial(
            preprocess, input_size=input_size, mean=mean, std=std, channels=channels,
            scale=scale, layout=layout, memory_format=memory_format, device=device), images)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3; got {channels}")
    plane = gray_plane(images)
    # the plane is a read-only view: torch gets its own (small) copy
    pixels = np.ascontiguousarray(images, dtype=np.float32) if plane is None else plane.copy()
    tensor = to_device(torch.from_numpy(pixels), device).permute(0, 3, 1, 2)
    if tuple(tensor.shape[2:]) != tuple(input_size):
        tensor = F.interpolate(tensor, size=tuple(input_size), mode="bilinear", antialias=True,
                               align_corners=False)
    if channels == 1:
        tensor = _luma(tensor)
    mean, std = (_per_channel(v, channels, tensor.device) for v in (mean, std))
    if scale != 1:   # x * 1 is x: the multiplication is skipped, not the result changed
        tensor = tensor * scale
    tensor = (tensor - mean) / std   # a gray plane broadcasts to three channels here
    if layout == "NHWC":
        return tensor.permute(0, 2, 3, 1).contiguous()
    if layout != "NCHW":
        raise ValueError(f"layout must be 'NCHW' or 'NHWC'; got {layout!r}")
    return tensor.contiguous(memory_format=memory_format)


def to_device(tensor, device):
    """``tensor`` on ``device`` (None: left where it is); CPU to CUDA through pinned memory,
    without blocking (the next CUDA operation on the stream waits for the copy)."""
    if device is None:
        return tensor
    device = torch.device(device)
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def _luma(tensor):
    """BT.601 luma ``(n, 1, H, W)`` of ``(n, 3, H, W)`` pixels; a gray plane ``(n, 1, H, W)`` is its
    own luma.

    Written as ``g + w_r (r - g) + w_b (b - g)`` (the weights sum to 1), which is exactly g when
    r = g = b: an RGB copy of a gray image gets bitwise the luma of its plane, with no work for
    the plane.
    """
    if tensor.shape[1] == 1:
        return tensor
    red, green, blue = tensor.split(1, dim=1)
    weight_red, _, weight_blue = _GRAY_WEIGHTS.tolist()
    return torch.add(torch.add(green, red - green, alpha=weight_red), blue - green,
                     alpha=weight_blue)


@functools.lru_cache(maxsize=256)
def _constants(values, channels, device):
    values = np.asarray(values, dtype=np.float32)
    if channels == 1 and values.size > 1:
        values = values.mean(keepdims=True)
    values = np.broadcast_to(values, (channels,))
    return torch.from_numpy(values.copy()).reshape(1, channels, 1, 1).to(device)


def _per_channel(values, channels, device=None):
    """Normalisation constants shaped (1, channels, 1, 1) on ``device``; RGB constants average
    for gray. Made once per (values, channels, device): they are read, never written."""
    key = tuple(values) if isinstance(values, (tuple, list)) else tuple(np.ravel(values).tolist())
    return _constants(key, channels, torch.device("cpu") if device is None else device)


def is_image_path(path):
    """True for file names with a common image extension."""
    return Path(path).suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp",
                                         ".tif", ".tiff", ".ppm", ".pgm"}
