"""A model's own evaluation preprocessing, run on skmll's canonical batches.

skmll hands experts float32 RGB pixels in [0, 1] (``_images``). A model from another library
was evaluated on the input its library's pipeline makes from 8-bit images: a ``transformers``
image processor, or a torchvision transform (timm's ``create_transform``, open_clip's
``preprocess``) applied to PIL images. The two classes here run that pipeline itself rather
than a reading of it:

- :class:`ProcessorInput` calls the image processor on the batch's 8-bit pixels, so every option
  it has (resize rule, resample, crop, rescale, normalisation, channel order, EfficientNet's
  ``include_top``) is the processor's own, including options added after this was written.
- :class:`TransformInput` runs the transform's own steps on the whole batch as a uint8 tensor
  where torchvision's steps do to a tensor what they do to a PIL image up to one 8-bit level
  (bilinear Resize, CenterCrop, ToTensor, Normalize), and the whole transform on one PIL image
  at a time otherwise. Bicubic is not batched: torch's antialiased bicubic kernel and Pillow's
  differ by up to 21 levels of 255 on noise (Pillow rounds and clips to 8 bits between its
  horizontal and vertical passes), nearest picks other pixels, and timm's ``ResizeKeepRatio``
  reads a PIL image's size.

Images from 8-bit files round-trip exactly: skmll stores ``v / 255`` and ``round(x * 255)``
gives ``v`` back. Other images (16-bit, float) are rounded to 8 bits, as the libraries' PIL
pipelines would do.
"""

import json

import numpy as np
import torch
from torchvision.transforms import InterpolationMode

from ._images import to_device


def eight_bit_pixels(images):
    """A canonical float batch ``(n, H, W, 3)`` in [0, 1] as uint8 ``(n, H, W, 3)`` pixels.

    Examples
    --------
    >>> import numpy as np
    >>> pixels = np.array([[0, 51, 128], [200, 254, 255]], np.uint8)
    >>> canonical = (pixels / np.float32(255))[None, ..., None].repeat(3, axis=3)
    >>> (eight_bit_pixels(canonical)[0, ..., 0] == pixels).all()   # back exactly
    np.True_
    """
    # one buffer, rounded in place: 14 times faster than the chain of temporaries. Canonical
    # pixels lie in [0, 1] (to 1e-6), so the rounded values are 0-255 and need no clipping.
    scaled = np.multiply(images, np.float32(255), dtype=np.float32)
    np.rint(scaled, out=scaled)
    return scaled.astype(np.uint8)


def _channels_first(pixels, device):
    """uint8 ``(n, H, W, 3)`` pixels as a ``(n, 3, H, W)`` tensor on ``device``."""
    return to_device(torch.from_numpy(pixels), device).permute(0, 3, 1, 2).contiguous()


def _runs_on_torch(processor):
    """Whether a transformers image processor works on torch tensors (torchvision backend)."""
    backend = getattr(processor, "backend", None)   # transformers 5
    return backend == "torchvision" or type(processor).__name__.endswith("Fast")   # 4.x


class ProcessorInput:
    """A ``transformers`` image processor, called on each batch: the model's own pipeline.

    The processor receives the batch's 8-bit pixels, as it would receive decoded image files:
    a uint8 tensor on the expert's device for processors of the torchvision backend (the
    default of ``AutoImageProcessor`` in transformers 5), uint8 arrays for PIL-backed ones.
    Its ``pixel_values`` are what the model gets, unchanged.

    Parameters
    ----------
    processor : transformers image processor
        E.g. from ``AutoImageProcessor.from_pretrained``.

    Examples
    --------
    >>> import numpy as np
    >>> from transformers import ConvNextImageProcessor
    >>> image_input = ProcessorInput(ConvNextImageProcessor(size={"shortest_edge": 32}))
    >>> image_input(np.zeros((2, 40, 60, 3), np.float32), "cpu").shape   # crop_pct 0.875
    torch.Size([2, 3, 32, 32])
    """

    def __init__(self, processor):
        self.processor = processor
        self.on_tensors = _runs_on_torch(processor)

    def __call__(self, images, device):
        """``(n, 3, h, w)`` float tensor on ``device`` for a canonical batch ``images``."""
        pixels = eight_bit_pixels(images)
        if self.on_tensors:
            batch, layout = _channels_first(pixels, device), "channels_first"
        else:
            batch, layout = list(pixels), "channels_last"
        out = self.processor(images=batch, return_tensors="pt", input_data_format=layout)
        pixel_values = out.get("pixel_values") if hasattr(out, "get") else None
        if not torch.is_tensor(pixel_values):
            raise TypeError(f"{type(self.processor).__name__} returned no 'pixel_values' "
                            "tensor; it is not an image classifier's processor")
        return to_device(pixel_values.float(), device)

    def describe(self):
        """The processor's class and settings, as text (part of the expert's fingerprint)."""
        settings = self.processor.to_json_string() if hasattr(self.processor, "to_json_string") \
            else json.dumps(self.processor.to_dict(), default=str, sort_keys=True)
        return f"{type(self.processor).__name__} {settings}"

    def __repr__(self):
        return f"ProcessorInput({type(self.processor).__name__})"


# torchvision steps that take a (n, C, H, W) uint8 tensor and do to it what they do to a PIL image
_BATCHED_GEOMETRY = ("Resize", "CenterCrop")
# steps that turn 8-bit pixels into floats in [0, 1] (ToTensor's division by 255)
_TO_FLOAT = ("ToTensor", "MaybeToTensor")
# steps that only convert a PIL image's mode: skmll's pixels are RGB already
_MODE_ONLY = ("MaybeConvertMode", "_convert_to_rgb")


def _step_kind(step):
    module = getattr(type(step), "__module__", "") or ""
    name = getattr(step, "__name__", None) or type(step).__name__
    if name in _BATCHED_GEOMETRY and module.startswith("torchvision."):
        bilinear = getattr(step, "interpolation", InterpolationMode.BILINEAR)
        return "geometry" if bilinear == InterpolationMode.BILINEAR else None
    if name in _TO_FLOAT:
        return "to_float"
    if name == "Normalize" and module.startswith("torchvision."):
        return "normalize"
    if name in _MODE_ONLY:
        return "mode"
    return None


class TransformInput:
    """A torchvision evaluation transform (timm's, open_clip's), run on a whole batch.

    When every step is one torchvision runs the same way on tensors (bilinear ``Resize``,
    ``CenterCrop``, ``ToTensor``/``MaybeToTensor``, ``Normalize``, and RGB-mode conversions),
    the steps run in order on the batch as a uint8 tensor on the expert's device: the result
    differs from the PIL path by Pillow's and torch's bilinear kernels rounding to 8 bits
    apart (one level at most). Otherwise (bicubic, nearest, timm's ``ResizeKeepRatio``...) the
    whole transform runs on one PIL image at a time, as the library runs it.

    Parameters
    ----------
    transform : callable
        A ``torchvision.transforms.Compose`` (or one step) meant for RGB PIL images.

    Examples
    --------
    >>> import numpy as np
    >>> from torchvision import transforms
    >>> steps = transforms.Compose([transforms.Resize(36), transforms.CenterCrop(32),
    ...                             transforms.ToTensor(), transforms.Normalize([0.5] * 3,
    ...                                                                         [0.5] * 3)])
    >>> image_input = TransformInput(steps)
    >>> image_input.batched, image_input(np.ones((2, 50, 80, 3), np.float32), "cpu").shape
    (True, torch.Size([2, 3, 32, 32]))
    """

    def __init__(self, transform):
        self.transform = transform
        steps = list(getattr(transform, "transforms", [transform]))
        kinds = [_step_kind(step) for step in steps]
        self.batched = None not in kinds and kinds.count("to_float") == 1
        self._steps = list(zip(kinds, steps))

    def __call__(self, images, device):
        """``(n, 3, h, w)`` float tensor on ``device`` for a canonical batch ``images``."""
        pixels = eight_bit_pixels(images)
        if not self.batched:
            return self._one_image_at_a_time(pixels, device)
        batch = _channels_first(pixels, device)
        for kind, step in self._steps:
            if kind == "to_float":
                batch = batch.float().div(255)   # what ToTensor does to 8-bit pixels
            elif kind != "mode":
                batch = step(batch)
        return batch

    def _one_image_at_a_time(self, pixels, device):
        from PIL import Image

        return to_device(torch.stack([self.transform(Image.fromarray(image))
                                      for image in pixels]), device)

    def describe(self):
        """The transform's steps, as text (part of the expert's fingerprint)."""
        return repr(self.transform)

    def __repr__(self):
        return f"TransformInput(batched={self.batched})"
