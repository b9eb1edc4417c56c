"""The paper experiment's hub file (shipped, written offline) and a check of its model ids."""

from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from ..hub import ModelHub

_HF = "hf"


@contextmanager
def paper_hub_file():
    """The path of the shipped hub file ``hub.toml`` (48 Hugging Face classifiers).

    Examples
    --------
    >>> from skmll.hub import ModelHub
    >>> with paper_hub_file() as path:
    ...     hub = ModelHub.from_toml(path)
    >>> len(hub), hub.names[0]
    (48, 'microsoft/resnet-18')
    """
    with resources.as_file(resources.files(__package__).joinpath("hub.toml")) as path:
        yield path


def _hub(hub):
    if isinstance(hub, ModelHub):
        return hub
    if hub is None:
        with paper_hub_file() as path:
            return ModelHub.from_toml(path)
    return ModelHub.from_toml(hub)


def _local_problem(folder):
    if not folder.is_dir():
        return f"local folder {str(folder)!r} does not exist"
    if not (folder / "config.json").is_file():
        return f"local folder {str(folder)!r} holds no config.json (not a save_pretrained folder)"
    return None


def _hub_problem(api, repo_id):
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        info = api.model_info(repo_id)
    except GatedRepoError:
        return "gated: accept its licence on huggingface.co and log in"
    except RepositoryNotFoundError:
        return "not found on the Hugging Face Hub (renamed, removed or private)"
    except Exception as exc:   # no network: the HTTP client's own error kinds
        return f"not checked: the Hugging Face Hub cannot be reached ({type(exc).__name__})"
    if info.pipeline_tag not in (None, "image-classification"):
        return f"not an image classifier (pipeline_tag {info.pipeline_tag!r})"
    return None


def _offline():
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def check_hub(hub=None):
    """Check that each Hugging Face model of a hub exists; the problems, by expert name.

    Local folders are checked on disk; Hub ids through the Hub's API (no weights are
    downloaded). Experts of other sources are not checked. Offline (``HF_HUB_OFFLINE`` set,
    or no network) every Hub id is reported as not checked, with the reason, in one line each.

    Parameters
    ----------
    hub : path, ModelHub or None, default=None
        A hub file or hub; None checks the shipped hub file.

    Returns
    -------
    problems : dict of str to str
        Expert name to what is wrong with it; empty when every model resolves.
    """
    from huggingface_hub import HfApi

    api, problems = HfApi(), {}
    offline = _offline()
    for expert in _hub(hub):
        prefix, _, model_id = getattr(expert, "source", "").partition(":")
        if prefix != _HF:
            continue
        looks_local = Path(model_id).is_absolute() or model_id.startswith(".")
        if looks_local or Path(model_id).is_dir():
            problem = _local_problem(Path(model_id))
        elif offline:
            problem = "not checked: offline (HF_HUB_OFFLINE is set)"
        else:
            problem = _hub_problem(api, model_id)
        if problem:
            problems[expert.name] = problem
    return problems
