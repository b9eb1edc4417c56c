"""Images for the parity tests: what a library's own pipeline reads from files."""

import numpy as np

# (width, height) and PIL mode: around, above and below the tiny models' 32 pixels, both
# orientations, a square one smaller than every input size, a gray and an RGBA image
SIZES_AND_MODES = [((61, 45), "RGB"), ((40, 97), "RGB"), ((20, 20), "RGB"), ((50, 50), "L"),
                   ((70, 33), "RGBA")]


def parity_images(seed=7):
    """PIL images of smooth colour blobs plus noise, so each has its own content at every
    scale (noise alone pools to the same features for every image)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = []
    for size, mode in SIZES_AND_MODES:
        coarse = rng.integers(0, 256, (3, 4, len(mode)), dtype=np.uint8).squeeze(-1) \
            if mode == "L" else rng.integers(0, 256, (3, 4, len(mode)), dtype=np.uint8)
        smooth = np.asarray(Image.fromarray(coarse).resize(size, Image.BICUBIC)).astype(int)
        noisy = smooth + rng.integers(-20, 21, smooth.shape)
        images.append(Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), mode))
    return images
