"""Step II, model selection: text matching, CHCO (Eq. 4-11) and top-k selection.

:func:`match_task` gives a task's classes their SDAG nodes (a :class:`TaskMatch`);
:func:`select_experts` solves CHCO over the hub, screening by bounds, and keeps the predictors
of each class (a :class:`Selection`).
"""

from ._chco import chco, chco_loss, chco_lower_bounds, chco_many, head_class_probabilities, heu
from ._matching import (classes_above_others, dictionary_form, dictionary_forms,
                        exact_name_matches, match_classes, mutual_best_match, normalise_name,
                        wordnet_noun_forms)
from ._screen import reuse_problems, solve_hub
from ._select import Selection, select_experts, select_predictors, select_within_budget
from ._task import TaskMatch, match_task
from ._text import SentenceEncoder, default_text_encoder, embed_texts

__all__ = ["Selection", "SentenceEncoder", "TaskMatch", "chco",
           "chco_loss", "chco_lower_bounds", "chco_many", "classes_above_others",
           "default_text_encoder", "dictionary_form", "dictionary_forms", "embed_texts",
           "exact_name_matches", "head_class_probabilities", "heu", "match_classes",
           "match_task", "mutual_best_match", "normalise_name", "reuse_problems",
           "select_experts", "select_predictors", "select_within_budget",
           "solve_hub", "wordnet_noun_forms"]
