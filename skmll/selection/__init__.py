"""Step II, model selection: text matching, CHCO (Eq. 4-11) and top-k selection."""

from ._chco import chco, chco_loss, chco_lower_bounds, chco_many, head_class_probabilities, heu
from ._matching import exact_name_matches, mutual_best_match
from ._select import select_predictors
from ._text import SentenceEncoder, default_text_encoder, embed_texts

__all__ = ["SentenceEncoder", "chco", "chco_loss", "chco_lower_bounds", "chco_many",
           "default_text_encoder", "embed_texts", "exact_name_matches",
           "head_class_probabilities", "heu", "mutual_best_match", "select_predictors"]
