"""hsafeat: multi-level molecular embeddings from a frozen, pretrained HSA-Net encoder."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from hsafeat.featurizer import HSAFeaturizer


def __getattr__(name: str) -> Any:
    # Lazy so that `import hsafeat` (and `hsafeat --help`) does not pay for torch and RDKit.
    if name == "HSAFeaturizer":
        from hsafeat.featurizer import HSAFeaturizer

        return HSAFeaturizer
    raise AttributeError(name)


__all__ = ["HSAFeaturizer", "__version__"]
