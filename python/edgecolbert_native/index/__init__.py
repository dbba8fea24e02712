"""The PLAID-style persistent index (issue 5): ``Index.build``, ``Index.open``, ``search``, ``add``,
``delete``, ``compact``, and ``import_colbert`` for directories colbert-ai wrote."""

from ._storage import CorruptIndexError, IndexLockedError
from ._colbert import import_colbert
from .index import Index, default_num_centroids

__all__ = ["Index", "CorruptIndexError", "IndexLockedError", "default_num_centroids", "import_colbert"]
