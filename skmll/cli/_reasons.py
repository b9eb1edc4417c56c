"""Why a class is not served by any expert, said in the command line's terms."""

import math

SERVE_HINT = ("give --general-model (conse:EXPERT, open_clip:ARCH or transformers:PATH) to "
              "serve them")


class UncoveredError(Exception):
    """Classes no expert serves, with their reasons (exit 1)."""


def uncovered_reasons(classifier, args):
    """``{class: reason}`` for every class no expert serves, in the order the classes were given.

    Read from the fitted classifier (also one whose ``fit`` stopped at coverage): text matching
    (``matched_nodes_``, ``unmatched_reasons_``), the budget (``over_budget_reasons_``) and each
    expert's CHCO loss for the class (``reuse_losses_``, one column per matched class).
    """
    matched = [c for c, match in classifier.matched_nodes_.items() if match is not None]
    losses = classifier.reuse_losses_
    reasons = {}
    for c, match in classifier.matched_nodes_.items():
        if classifier.experts_.get(c):
            continue
        if c in classifier.unmatched_reasons_:
            reasons[c] = f"not matched: {classifier.unmatched_reasons_[c]}"
        elif match is None:
            reasons[c] = _unmatched(args)
        elif c in classifier.over_budget_reasons_:
            reasons[c] = (f"over budget: no expert that could serve node {match[0]} fits within "
                          f"--max-cost {args.max_cost} {args.cost_unit} per image beside the "
                          "experts of the other classes")
        elif losses.shape[1] == len(matched):
            reasons[c] = _no_predictor(match[0], list(losses[:, matched.index(c)]),
                                       classifier.expert_names_, args.beta)
        else:
            reasons[c] = f"matched node {match[0]}, but no expert passes the selection"
    return reasons


def _unmatched(args):
    floor = (f" with similarity >= --min-similarity {args.min_similarity}"
             if args.min_similarity > 0 else "")
    return ("unmatched name: no SDAG node with images is its mutual best match" + floor
            + " (try another name for the class)")


def _no_predictor(node, losses, names, beta):
    finite = [m for m, loss in enumerate(losses) if math.isfinite(loss)]
    if not finite:
        return (f"matched node {node}, but no expert has a usable label there (every expert's "
                "reuse loss is infinite)")
    best = min(finite, key=losses.__getitem__)
    return (f"matched node {node}, but no expert has a reuse loss under --beta {beta} (the best "
            f"is {names[best]!r} with {losses[best]:.3f})")


def uncovered_message(reasons, n_classes, remedy):
    """One line: how many classes are not served, why each, and what to do."""
    listed = "; ".join(f"{c!r}: {why}" for c, why in reasons.items())
    return (f"the hub serves {n_classes - len(reasons)} of {n_classes} classes; not served: "
            f"{listed}. {remedy}")
