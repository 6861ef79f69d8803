"""Descriptor readouts: the model's own predictions of standardised RDKit descriptors, written as
the `desc_pred` column.

- "linear" (hsanet-moses-v2.1): the linear stage-C head on `fused`, trained jointly with the
  encoder.
- "pooled_mlp": fitted afterwards on the frozen encoder (scripts/train_readout.py). Its input is
  `fused` plus the SUM of every GNN level's node states. `fused` is built from means and maxima,
  so it cannot count: extensive descriptors (MolWt, atom and ring counts, MolMR, LabuteASA) were
  predicted poorly (MolWt r = 0.53 on the test drugs). Sums of node states make counts linear in
  the input; a linear path keeps them exact and a one-hidden-layer MLP beside it adds what is not
  linear (logP, TPSA contributions that depend on neighbours)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from hsafeat.nn.scatter import scatter_sum

# kind -> what the desc_pred column is, as the Parquet metadata says it
READOUT_KINDS = {
    "linear": "linear readout of fused: the model's standardised RDKit descriptors",
    "pooled_mlp": "readout of fused and the summed GNN node states (linear + MLP): the model's standardised RDKit descriptors",
}
SUM_SCALE = 1.0 / 32.0  # node-state sums over ~20-60 atoms, scaled to the size of the means in `fused`


def level_sums(levels: list[torch.Tensor], batch_index: torch.Tensor, n_graphs: int) -> torch.Tensor:
    """B x (n_levels * d_model): each molecule's sum of node states at every GNN depth, scaled."""
    h = torch.cat(levels, dim=-1)
    return scatter_sum(h, batch_index, n_graphs) * SUM_SCALE


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch ops on one thread, then restore the count. The readout's 1,024-wide products
    split their sums across threads otherwise (oneDNN/MKL), so desc_pred changed in the last
    bits (up to 1.3e-5) with the thread count while every other column stayed the same."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class PooledMLPReadout(nn.Module):
    """[fused; level sums] -> descriptors, as a linear map plus a one-hidden-layer MLP."""

    def __init__(self, d_in: int, hidden: int, n_desc: int) -> None:
        super().__init__()
        self.linear = nn.Linear(d_in, n_desc)
        self.mlp = nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, n_desc))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + self.mlp(x)
