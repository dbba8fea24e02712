"""A drop-in for fast-plaid 1.4 users (lightonai/fast-plaid): its public Python API, on this engine.

    from edgecolbert_native.integrations.fast_plaid import filtering, search   # was: from fast_plaid import ...
    fast_plaid = search.FastPlaid(index="index", device="cpu")
    fast_plaid.create(documents_embeddings=[...], metadata=[...])
    scores = fast_plaid.search(queries_embeddings=queries, top_k=10, subset=filtering.where(...))

``search.FastPlaid`` has fast-plaid 1.4.7's methods with its names, arguments, defaults and return shapes;
``filtering`` its metadata helper. Embeddings may be torch tensors (any torch version: nothing here is
compiled against torch) or numpy arrays. What differs, and why, is in ``search.FastPlaid``'s docstring and
docs/guide.md ("fast-plaid users"). An index directory fast-plaid itself wrote is imported with
``edgecolbert_native.Index.import_fast_plaid``.
"""

from . import filtering, search
from .search import FastPlaid

__all__ = ["FastPlaid", "filtering", "search"]
