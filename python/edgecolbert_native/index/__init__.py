"""The PLAID-style persistent index (issue 5): ``Index.build``, ``Index.open``, ``search``, ``add``,
``delete``, ``compact``, and ``import_colbert`` for directories colbert-ai wrote."""

from ._storage import CorruptIndexError, IndexLockedError
from .index import Index, default_num_centroids, import_colbert

__all__ = ["Index", "CorruptIndexError", "IndexLockedError", "default_num_centroids", "import_colbert"]
