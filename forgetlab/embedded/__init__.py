"""What forgetlab builds for itself so the default study runs offline on a laptop CPU.

- `ensure_embedded_base(name)`: a small Llama pretrained on the standard library's docstrings,
  with its held-out docstrings as the forgetting text (`embedded`, and `embedded-tiny` for tests).
- `ensure_embedded_dataset(name)`: fine-tuning data from other domains (`code`, `instruct`).

Both build on first use into the cache (`$FORGETLAB_CACHE`, else `~/.cache/forgetlab`; see
`cache.py` and `forgetlab/locations.py`) and are found there afterwards. Importing this package is cheap: torch, tokenizers
and transformers are imported only when something is built.
"""

from forgetlab.embedded.base import (
    BASE_SPECS,
    EmbeddedBase,
    ensure_embedded_base,
    ensure_pretrain_documents,
    list_cached_bases,
)
from forgetlab.embedded.corpus import DOCUMENT_SEPARATOR, DocstringCorpus, collect_docstrings, split_documents
from forgetlab.embedded.datasets import (
    EMBEDDED_DATASETS,
    EmbeddedDataset,
    ensure_embedded_dataset,
    list_cached_datasets,
)
from forgetlab.embedded.pretrain import DEFAULT_SPEC, TINY_SPEC, BaseSpec

EMBEDDED_BASES: tuple[str, ...] = tuple(BASE_SPECS)

__all__ = [
    "BASE_SPECS",
    "DEFAULT_SPEC",
    "DOCUMENT_SEPARATOR",
    "EMBEDDED_BASES",
    "EMBEDDED_DATASETS",
    "TINY_SPEC",
    "BaseSpec",
    "DocstringCorpus",
    "EmbeddedBase",
    "EmbeddedDataset",
    "collect_docstrings",
    "ensure_embedded_base",
    "ensure_pretrain_documents",
    "ensure_embedded_dataset",
    "list_cached_bases",
    "list_cached_datasets",
    "split_documents",
]
