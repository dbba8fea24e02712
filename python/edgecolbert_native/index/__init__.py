"""The PLAID-style persistent index (issue 5): ``Index.build``, ``Index.open``, ``search``, ``add``,
``delete``, ``compact``, documents and metadata (``get``, ``search(where=..., hybrid=...)``), and
``import_colbert`` / ``import_fast_plaid`` for directories colbert-ai or fast-plaid wrote."""

from ._docstore import FilterError
from ._storage import CorruptIndexError, IndexLockedError
from .index import Index, default_num_centroids, import_colbert, import_fast_plaid

__all__ = ["Index", "CorruptIndexError", "IndexLockedError", "FilterError", "default_num_centroids",
           "import_colbert", "import_fast_plaid"]
