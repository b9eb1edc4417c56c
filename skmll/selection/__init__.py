"""Step II, model selection: text matching, CHCO (Eq. 4-11) and top-k selection."""

from ._chco import chco, chco_loss, chco_lower_bounds, chco_many, head_class_probabilities, heu
from ._matching import (classes_above_others, dictionary_form, dictionary_forms,
                        exact_name_matches, match_classes, mutual_best_match, normalise_name,
                        wordnet_noun_forms)
from ._select import select_predictors, select_within_budget
from ._text import SentenceEncoder, default_text_encoder, embed_texts

__all__ = ["SentenceEncoder", "chco", "classes_above_others", "chco_loss", "chco_lower_bounds", "chco_many",
           "default_text_encoder", "dictionary_form", "dictionary_forms", "embed_texts",
           "exact_name_matches", "head_class_probabilities", "heu", "match_classes",
           "mutual_best_match", "normalise_name", "select_predictors", "select_within_budget",
           "wordnet_noun_forms"]
