import pytest
import torch

from hsafeat.chem.features import ATOM_FEATURES, ATOM_MASK
from hsafeat.chem.graph import mol_to_graph_and_fragments
from hsafeat.chem.parse import parse_smiles
from hsafeat.data.batch import collate
from hsafeat.pretrain.objectives import ATOM_COLUMNS, MASKED_ATTRIBUTES, StageAHeads, mask_atoms


def batch_of(*smiles: str):
    return collate([mol_to_graph_and_fragments(parse_smiles(s).mol)[0] for s in smiles])


def test_attribute_masking_hides_what_gives_the_element_away():
    batch = batch_of("C[N+](C)(C)CC(=O)[O-]", "c1ccncc1O")
    view, chosen = mask_atoms(batch, 0.5, torch.Generator().manual_seed(0), masking="attributes")
    assert chosen.any() and not chosen.all()
    assert (view.x[chosen, 0] == ATOM_MASK).all()
    for name in MASKED_ATTRIBUTES:
        column = ATOM_COLUMNS.index(name)
        assert (view.x[chosen, column] == ATOM_FEATURES[name] - 1).all(), name   # the "other" slot
    assert torch.equal(view.x[~chosen], batch.x[~chosen])        # the rest untouched
    element, same = mask_atoms(batch, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(same, chosen)                              # the same atoms either way
    assert torch.equal(element.x[:, 1:], batch.x[:, 1:])          # "element" masks the number only


def test_attribute_loss_is_finite_and_learns_from_the_unmasked_features():
    batch = batch_of("C[N+](C)(C)CC(=O)[O-]", "c1ccncc1O")
    heads = StageAHeads(8, attributes=True)
    h = torch.randn(batch.x.shape[0], 8, requires_grad=True)
    chosen = torch.zeros(batch.x.shape[0], dtype=torch.bool)
    chosen[:4] = True
    loss = heads.attribute_loss(h, batch.x, chosen)
    loss.backward()
    assert torch.isfinite(loss) and h.grad is not None and h.grad[4:].abs().sum() == 0


def test_unknown_masking_is_refused():
    with pytest.raises(ValueError, match="attributes"):
        mask_atoms(batch_of("CCO"), 0.5, masking="everything")


def test_size_batches_hold_similar_molecules_and_depend_on_seed_and_number_only():
    from types import SimpleNamespace

    import numpy as np

    from hsafeat.pretrain.loop import SIZE_POOL, Trainer

    n_atoms = np.random.default_rng(1).integers(5, 150, 5000)
    fake = SimpleNamespace(train=SimpleNamespace(seed=3, batch_size=64), _n_atoms=n_atoms,
                           corpus=SimpleNamespace(graphs=range(5000)))
    batches = [Trainer._size_batch(fake, k) for k in range(SIZE_POOL)]
    spread = np.median([np.ptp(n_atoms[b]) for b in batches])
    assert spread < 0.2 * np.ptp(n_atoms)                 # a batch spans a narrow band of sizes
    assert sorted(np.concatenate(batches).tolist()) == sorted(fake._pool[1].reshape(-1).tolist())
    again = SimpleNamespace(**{**vars(fake), "_pool": (None,)})
    assert np.array_equal(Trainer._size_batch(again, 5), batches[5])   # a fresh trainer (a resume) draws the same
