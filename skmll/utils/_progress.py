"""Progress bars that ``verbose=0`` silences."""

from tqdm.auto import tqdm


def progress(iterable=None, *, verbose=1, **kwargs):
    """tqdm over ``iterable`` when ``verbose`` is truthy, else a silent pass-through bar."""
    return tqdm(iterable, disable=not verbose, leave=False, dynamic_ncols=True, **kwargs)
