"""The one numpy -> torch bridge: batches of MolGraphs."""
from hsafeat.data.batch import GraphBatch, collate

__all__ = ["GraphBatch", "collate"]
