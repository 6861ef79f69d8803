"""Chemistry: RDKit and numpy only (never torch). SMILES in, numpy graphs out."""
from hsafeat.chem.graph import MolGraph, mol_to_graph
from hsafeat.chem.parse import ParsedMolecule, parse_smiles

__all__ = ["MolGraph", "ParsedMolecule", "mol_to_graph", "parse_smiles"]
