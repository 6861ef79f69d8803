"""hsafeat's scatter ops and GINE layer equal torch_geometric's, bit for bit: the weights were
trained with PyG's, and the embedding path no longer imports it (start-up time)."""
import pytest
import torch
from torch import nn

from hsafeat.nn.gnn import GINEConv
from hsafeat.nn.scatter import scatter_mean, scatter_sum, to_dense_batch

pyg = pytest.importorskip("torch_geometric")
from torch_geometric.nn import GINEConv as PygGINEConv  # noqa: E402
from torch_geometric.utils import scatter as pyg_scatter  # noqa: E402
from torch_geometric.utils import to_dense_batch as pyg_to_dense_batch  # noqa: E402


def _groups(seed: int, n_groups: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted group index with some empty groups, and random rows."""
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(0, 6, (n_groups,), generator=g)
    index = torch.repeat_interleave(torch.arange(n_groups), sizes)
    return index, torch.randn(len(index), 8, generator=g)


@pytest.mark.parametrize("seed", range(4))
def test_scatter_sum_and_mean_equal_pyg(seed):
    index, x = _groups(seed)
    shuffled = torch.randperm(len(index), generator=torch.Generator().manual_seed(seed))
    for idx, src in ((index, x), (index[shuffled], x[shuffled]), (index, x[:, 0])):
        assert torch.equal(scatter_sum(src, idx, 5), pyg_scatter(src, idx, dim=0, dim_size=5, reduce="sum"))
        assert torch.equal(scatter_mean(src, idx, 5), pyg_scatter(src, idx, dim=0, dim_size=5, reduce="mean"))


@pytest.mark.parametrize("seed", range(4))
def test_to_dense_batch_equals_pyg(seed):
    index, x = _groups(seed)
    width = int(torch.bincount(index, minlength=5).max()) + 1
    ours, our_mask = to_dense_batch(x, index, 5, width)
    theirs, their_mask = pyg_to_dense_batch(x, index, batch_size=5, max_num_nodes=width)
    assert torch.equal(ours, theirs) and torch.equal(our_mask, their_mask)


def test_gine_equals_pyg_with_the_same_weights():
    torch.manual_seed(0)
    d = 16
    mlp = lambda: nn.Sequential(nn.Linear(d, 2 * d), nn.LayerNorm(2 * d), nn.ReLU(), nn.Linear(2 * d, d))  # noqa: E731
    theirs = PygGINEConv(mlp(), train_eps=True)
    ours = GINEConv(mlp())
    with torch.no_grad():
        theirs.eps.fill_(0.3)
    ours.load_state_dict(theirs.state_dict())  # same parameter names: strict load
    edge_index = torch.tensor([[0, 1, 1, 2, 2, 3, 0, 4], [1, 0, 2, 1, 3, 2, 4, 0]])
    h, e = torch.randn(6, d), torch.randn(edge_index.size(1), d)  # atom 5 has no bond
    assert torch.equal(ours(h, edge_index, e), theirs(h, edge_index, e))


def test_gine_initialises_as_pyg_does():
    """The same random draws as PyG's layer, so a seeded pretraining run reproduces."""
    d = 8
    mlp = lambda: nn.Sequential(nn.Linear(d, 2 * d), nn.LayerNorm(2 * d), nn.ReLU(), nn.Linear(2 * d, d))  # noqa: E731
    torch.manual_seed(1)
    theirs = PygGINEConv(mlp(), train_eps=True).state_dict()
    torch.manual_seed(1)
    ours = GINEConv(mlp()).state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
