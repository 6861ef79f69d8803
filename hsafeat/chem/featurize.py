"""A chunk of SMILES -> graphs, canonical SMILES and error reasons, row-aligned: the work the
featurization processes do. Torch-free, so those processes start without it."""
from __future__ import annotations

from dataclasses import dataclass

from rdkit import Chem

from hsafeat.chem.fragment_names import FragmentNames, keyable
from hsafeat.chem.graph import MolGraph, mol_to_graph
from hsafeat.chem.parse import may_carry_stereo, parse_smiles
from hsafeat.chem.smiles_tokens import smiles_token_ids


@dataclass
class Featurized:
    graphs: list[MolGraph | None]
    canonical: list[str | None]
    errors: list[str | None]


# Per process: each featurization worker fills its own.
FRAGMENT_NAMES = FragmentNames()


def featurize_one(smiles: str, vocab: dict[str, int], max_atoms: int,
                  token_len: int = 0) -> tuple[MolGraph | None, str | None, str | None]:
    """(graph, canonical SMILES, None) for a valid molecule, (None, None, reason) otherwise.
    token_len > 0: the graph also carries the canonical SMILES' token ids, cut to token_len
    (weights with the SMILES branch; 0 for all others)."""
    parsed = parse_smiles(smiles, max_atoms)
    if parsed.mol is None:
        return None, None, parsed.error
    try:
        names = FRAGMENT_NAMES if keyable(smiles) else None
        graph, canonical = mol_to_graph(parsed.mol, vocab, may_carry_stereo(smiles), names), Chem.MolToSmiles(parsed.mol)
        if token_len > 0:
            graph.smiles_tokens = smiles_token_ids(canonical, token_len)
        return graph, canonical, None
    except Exception as exc:  # noqa: BLE001 - one odd molecule must not stop a run
        return None, None, f"featurization failed: {exc}"


def featurize(smiles: list[str], vocab: dict[str, int], max_atoms: int, token_len: int = 0) -> Featurized:
    results = [featurize_one(s, vocab, max_atoms, token_len) for s in smiles]
    return Featurized([r[0] for r in results], [r[1] for r in results], [r[2] for r in results])
