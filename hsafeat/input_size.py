"""How much work a small input holds, in heavy atoms, read from its SMILES text without RDKit.

The encoder and the graph builder cost about the same per atom, so whether a run pays for a
featurization worker depends on the atoms it holds, not its rows: 460 drug molecules of 49 heavy
atoms on average are as much work as 900 of 25 (BENCHMARKS.md, "Throughput where users are")."""
from __future__ import annotations

import re

from hsafeat.io import InputError, InputSource

# Bracket atoms count once each (except hydrogens written as atoms); outside brackets, the organic
# subset: two-letter halogens first, then single letters (aromatic ones lower case).
_BRACKET = re.compile(r"\[([^\]]*)\]")
_ORGANIC = re.compile(r"Cl|Br|[BCNOPSFIbcnops]")
_HYDROGEN = re.compile(r"^\d*H(?![a-z])")  # [H], [2H], [H+]; not [Hg], [He]


def heavy_atoms_in_smiles(smiles: str) -> int:
    """Heavy atoms written in a SMILES string (RDKit's count for valid SMILES without dummy atoms
    `[*]`; an estimate otherwise: it only decides a schedule)."""
    brackets = _BRACKET.findall(smiles)
    heavy_brackets = sum(1 for inside in brackets if not _HYDROGEN.match(inside))
    return heavy_brackets + len(_ORGANIC.findall(_BRACKET.sub("", smiles)))


def estimate_heavy_atoms(source: InputSource, max_rows: int) -> int | None:
    """The heavy atoms of every SMILES of a file of at most max_rows rows, read by a second,
    independent reader (source itself stays unread); None for stdin, a longer file, or one that
    cannot be read (the run itself reports that)."""
    if source.streamed:
        return None
    twin = InputSource(source.path, source.format, source.gzip, source.smiles_column, source.id_column)
    total = 0
    try:
        for i, row in enumerate(twin.rows()):
            if i >= max_rows:
                return None
            total += heavy_atoms_in_smiles(row.smiles)
    except InputError:
        return None
    return total
