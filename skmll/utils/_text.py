"""Text rules shared by the subpackages: class-name templates, names quoted in messages."""

import string

_LISTED = 10        # names quoted in an error message before "... and N more"


def quoted_names(names):
    """At most ten names for a message, then how many more there are.

    Examples
    --------
    >>> quoted_names(["a", "b"])
    "'a', 'b'"
    >>> quoted_names(range(12))
    '0, 1, 2, 3, 4, 5, 6, 7, 8, 9 ... and 2 more'
    """
    names = list(names)
    shown = ", ".join(repr(n) for n in names[:_LISTED])
    return shown + (f" ... and {len(names) - _LISTED} more" if len(names) > _LISTED else "")


def check_template(template, what="template"):
    """Refuse ``template`` unless it holds exactly one ``{}`` where the class name goes.

    Other braces are written doubled (``{{``, ``}}``), as :meth:`str.format` reads them; the
    template is then filled with :func:`fill_template`. The classifier's ``class_template`` and
    a general model's prompt templates follow this one rule.

    Parameters
    ----------
    template : str
    what : str, default="template"
        What the template is called in the error message.

    Returns
    -------
    str
        ``template``, accepted.

    Raises
    ------
    ValueError
        Naming ``what`` and the template, when it is not a string with exactly one ``{}``.

    Examples
    --------
    >>> check_template("a photo of a {}.")
    'a photo of a {}.'
    >>> check_template("{} and {}", what="class_template")
    Traceback (most recent call last):
    ...
    ValueError: class_template must hold exactly one '{}' where the class name goes (other \
braces doubled: '{{'); got '{} and {}'
    """
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        ok = len(fields) == 1 and fields[0] in ("", "0")
        if ok:
            template.format("x")
    except (ValueError, IndexError, KeyError, AttributeError, TypeError):
        ok = False
    if not ok:
        raise ValueError(f"{what} must hold exactly one '{{}}' where the class name goes "
                         f"(other braces doubled: '{{{{'); got {template!r}")
    return template


def fill_template(template, name):
    """``template`` (accepted by :func:`check_template`) with ``name`` in its ``{}``.

    Examples
    --------
    >>> fill_template("{{{}}} photo", "cat")
    '{cat} photo'
    """
    return template.format(name)
