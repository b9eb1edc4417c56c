"""What an expert's heads mean, where the expert says: for explanations only.

skmll never reads head names when labelling, selecting or predicting (an expert is known by its
outputs alone, as in the paper); names only make :meth:`MLLZeroShotClassifier.explain` and the
command line readable. Experts without names stay anonymous: their heads are ``h<index>``.
"""

from collections.abc import Sequence


def check_head_names(head_names, n_outputs, expert_name):
    """``head_names`` as a list of str, one per output; None when not given.

    ``n_outputs`` None (not known yet) checks the names' types only.

    Raises
    ------
    TypeError
        When ``head_names`` is not a sequence of str (a single str is refused: it would be read
        one character per head).
    ValueError
        When there is not exactly one name per output.
    """
    if head_names is None:
        return None
    if isinstance(head_names, str) or not isinstance(head_names, Sequence):
        raise TypeError(f"expert {expert_name!r}: head_names must be a list of str, one per "
                        f"output; got {type(head_names).__name__}")
    names = list(head_names)
    if not all(isinstance(name, str) for name in names):
        raise TypeError(f"expert {expert_name!r}: head_names must all be str")
    if n_outputs is not None and len(names) != int(n_outputs):
        raise ValueError(f"expert {expert_name!r}: {len(names)} head names for "
                         f"{int(n_outputs)} outputs")
    return names


def describe_head(expert, head):
    """How explanations name head ``head`` of ``expert``.

    ``"<name> (head <index>)"`` when the expert declares ``head_names``, ``"h<index>"``
    otherwise. ``head`` counts skmll's heads (see :func:`n_heads`): a single-logit expert ``z``
    has the two heads ``[0, z]``, so its head 1 is its one named output and head 0 the rest.
    Reading ``head_names`` never loads a :class:`LazyExpert`.

    Examples
    --------
    >>> class Shirts:
    ...     name, n_outputs = "shirts", 2
    ...     head_names = ["jersey, T-shirt", "sweatshirt"]
    ...     def logits(self, images): ...
    >>> describe_head(Shirts(), 0)
    'jersey, T-shirt (head 0)'
    >>> class Anonymous:
    ...     name, n_outputs = "anonymous", 2
    ...     def logits(self, images): ...
    >>> describe_head(Anonymous(), 1)
    'h1'
    """
    names = getattr(expert, "head_names", None)
    if names is None:
        return f"h{head}"
    if len(names) == 1:
        label = names[0] if head == 1 else f"not {names[0]}"
    else:
        label = names[head]
    return f"{label} (head {head})"
