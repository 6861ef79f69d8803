"""SMILES parsing that never raises: a molecule, or the reason there is none."""
from __future__ import annotations

from dataclasses import dataclass

from rdkit import Chem, RDLogger, rdBase

# Warnings (e.g. "not removing hydrogen atom without neighbors") are noise for a featurizer;
# errors are captured per call and returned as the row's error string.
RDLogger.DisableLog("rdApp.warning")

MAX_ATOMS = 500
MAX_SMILES_CHARS = 20 * MAX_ATOMS


@dataclass(frozen=True)
class ParsedMolecule:
    mol: Chem.Mol | None
    error: str | None

    @property
    def valid(self) -> bool:
        return self.mol is not None


def _clean(log: str) -> str:
    """RDKit log lines start with a '[hh:mm:ss] ' stamp; keep the first meaningful line."""
    lines = [ln.split("] ", 1)[-1].strip() for ln in log.strip().splitlines()]
    lines = [ln for ln in lines if ln]
    return lines[0] if lines else "RDKit could not parse the SMILES"


def may_carry_stereo(smiles: str) -> bool:
    """False when the SMILES cannot give any atom a chiral tag or any bond a stereo label:
    RDKit sets those only from '@' and from '/' '\\' around a double bond (and CXSMILES
    extensions, after '|'). Most library SMILES (all of MOSES) have none."""
    return any(mark in smiles for mark in "@/\\|")


def parse_smiles(smiles: str, max_atoms: int = MAX_ATOMS) -> ParsedMolecule:
    """Parse and sanitize one SMILES. Empty, oversized and unparsable input give an error."""
    smiles = smiles.strip()
    if not smiles:
        return ParsedMolecule(None, "empty SMILES")
    limit = max(MAX_SMILES_CHARS, 20 * max_atoms)
    if len(smiles) > limit:
        return ParsedMolecule(None, f"SMILES has {len(smiles)} characters; the limit is {limit}")
    _, _, rest = smiles.partition(" ") if " " in smiles else smiles.partition("\t")
    if rest.strip() and not rest.lstrip().startswith("|"):
        # RDKit would read it as the molecule's name: "CCO CCN" (a missing dot) must not pass as ethanol
        return ParsedMolecule(None, f"unexpected text after the SMILES: {rest.strip()[:40]!r}")
    if not smiles.isascii():  # SMILES are ASCII; RDKit's error excerpt could split a multi-byte char
        i, ch = next((i, ch) for i, ch in enumerate(smiles) if not ch.isascii())
        return ParsedMolecule(None, f"non-ASCII character {ch!r} at position {i}")
    with rdBase.CaptureErrorLog() as capture:
        try:
            mol = Chem.MolFromSmiles(smiles)
        except Exception as exc:  # noqa: BLE001 - RDKit raises on a few malformed inputs instead of returning None
            return ParsedMolecule(None, f"RDKit error: {exc}")
    if mol is None:
        try:
            return ParsedMolecule(None, _clean(capture.messages))
        except UnicodeDecodeError:
            return ParsedMolecule(None, "RDKit could not parse the SMILES")
    if mol.GetNumAtoms() == 0:
        return ParsedMolecule(None, "SMILES has no atoms")
    if mol.GetNumAtoms() > max_atoms:
        # the graph's atoms: hydrogens written explicitly ([2H]) are nodes too, so not "heavy atoms"
        return ParsedMolecule(None, f"molecule has {mol.GetNumAtoms()} atoms (explicit hydrogens included); "
                                    f"the limit is {max_atoms}")
    return ParsedMolecule(mol, None)
