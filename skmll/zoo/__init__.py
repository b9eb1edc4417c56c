"""Search over a zoo of labelled experts: labels stored by node row, a per-node index with a
bound on CHCO's loss, and top-k search by the threshold algorithm that equals exhaustive
selection, on one machine or sharded over a cluster."""

from ._bound import loss_bounds, pair_bound, responsiveness
from ._convert import ZOO_FOLDER, update_zoo
from ._distributed import build_zoo_sharded, search_zoo_sharded
from ._rows import decode_rows, encode_rows, stored_probabilities
from ._search import search_zoo
from ._store import ZooStore

__all__ = ["ZOO_FOLDER", "ZooStore", "build_zoo_sharded", "decode_rows",
           "encode_rows", "loss_bounds", "pair_bound", "responsiveness", "search_zoo",
           "search_zoo_sharded", "stored_probabilities", "update_zoo"]
