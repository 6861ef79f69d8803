"""SMILES tokens for the optional SMILES branch (DMCA, arXiv 2501.06608; nn/smiles_branch.py).

The usual atom-level regex (Schwaller et al., Molecular Transformer): a bracket atom is one token,
Br and Cl are one token each, %nn is one ring closure, every other character is its own token.
Ids come from a FIXED vocabulary written out below, never built from data: the vocabulary is part
of what weights with the branch mean, and a fixed one needs no file to ship. A token outside it is
UNK. Tokenize the CANONICAL SMILES (RDKit's MolToSmiles of the parsed molecule, which featurize
already computes): it is a function of the molecule alone, so the ids do not depend on how the input
numbered its atoms or spelt the molecule. Torch-free, like the rest of chem/.
"""
from __future__ import annotations

import re

import numpy as np

PAD, UNK, CLS, MASK = 0, 1, 2, 3
SPECIAL = ("<pad>", "<unk>", "<cls>", "<mask>")   # <mask> is reserved (masked-token objectives)

# Canonical SMILES of drug-like molecules are short (drugs_2000: median 42 tokens, 99th percentile
# 92, longest 234) and attention costs S^2, so 256 ids including CLS keep every drug whole and bound
# the cost of the rare long molecule. The graph branch always sees the whole molecule: a truncated
# tail only loses part of a second view of it.
MAX_LEN = 256

# Atom-level SMILES regex; the final `.` catches any other character, so the tokens always join
# back to the input (and such a token is UNK).
TOKEN_PATTERN = re.compile(
    r"(\[[^\]]+]|Br|Cl|N|O|S|P|F|I|B|C|b|c|n|o|s|p|\(|\)|\.|=|#|-|\+|\\|/|:|~|@|\?|>|\*|\$|%[0-9]{2}|[0-9]|.)"
)

ORGANIC = ("B", "C", "N", "O", "P", "S", "F", "Cl", "Br", "I", "b", "c", "n", "o", "s", "p", "*")
BONDS_AND_BRANCHES = ("(", ")", ".", "=", "#", "-", ":", "/", "\\", "~", "$")
RING_CLOSURES = tuple(str(d) for d in range(10)) + tuple(f"%{d}" for d in range(10, 100))
BRACKET_ATOMS = (
    # aromatic NH, charged N / O / S / C / P / B, radicals and explicit H
    "[nH]", "[nH+]", "[n+]", "[n-]", "[NH]", "[NH-]", "[NH+]", "[NH2+]", "[NH3+]", "[NH4+]", "[N+]", "[N-]",
    "[O-]", "[O+]", "[OH+]", "[OH-]", "[o+]", "[S+]", "[S-]", "[S+2]", "[SH]", "[SH+]", "[SH-]", "[s+]",
    "[C-]", "[C+]", "[CH-]", "[CH2-]", "[CH+]", "[CH2+]", "[CH]", "[CH2]", "[CH3]", "[c-]", "[cH-]", "[c+]",
    "[P+]", "[P-]", "[PH]", "[PH+]", "[PH2]", "[B-]", "[BH-]", "[BH2-]", "[BH3-]", "[I+]", "[Cl+3]",
    "[H]", "[H+]", "[H-]", "[2H]", "[3H]", "[13C]", "[13CH]", "[13CH2]", "[13CH3]", "[13cH]", "[14C]",
    "[18F]", "[11C]", "[11CH3]", "[123I]", "[125I]", "[131I]",
    # stereocentres
    "[C@H]", "[C@@H]", "[C@]", "[C@@]", "[N@]", "[N@@]", "[N@+]", "[N@@+]", "[N@H+]", "[N@@H+]",
    "[S@]", "[S@@]", "[S@+]", "[S@@+]", "[P@]", "[P@@]", "[P@+]", "[P@@+]", "[Si@]", "[Si@@]",
    # elements outside the organic subset, neutral or as common ions
    "[Si]", "[SiH]", "[SiH2]", "[SiH3]", "[Se]", "[SeH]", "[se]", "[Te]", "[te]", "[As]", "[AsH]", "[as]",
    "[Ge]", "[Sn]", "[Al]", "[Ga]", "[Bi]", "[Sb]",
    "[F-]", "[Cl-]", "[Br-]", "[I-]", "[Cl]", "[Br]", "[I]", "[F]",
    "[Li+]", "[Na+]", "[K+]", "[Rb+]", "[Cs+]", "[Mg+2]", "[Ca+2]", "[Sr+2]", "[Ba+2]", "[Zn+2]", "[Al+3]",
    "[Li]", "[Na]", "[K]", "[Mg]", "[Ca]", "[Zn]", "[Fe]", "[Fe+2]", "[Fe+3]", "[Cu]", "[Cu+]", "[Cu+2]",
    "[Co]", "[Co+2]", "[Co+3]", "[Ni]", "[Ni+2]", "[Mn]", "[Mn+2]", "[Cr]", "[Cr+3]", "[Ti]", "[V]", "[Mo]",
    "[W]", "[Zr]", "[Ru]", "[Rh]", "[Pd]", "[Pd+2]", "[Ag]", "[Ag+]", "[Pt]", "[Pt+2]", "[Au]", "[Au+]",
    "[Hg]", "[Hg+2]", "[Gd]", "[Gd+3]", "[Tc]", "[In]", "[Tl]", "[Pb]",
)
VOCAB: tuple[str, ...] = SPECIAL + ORGANIC + BONDS_AND_BRANCHES + RING_CLOSURES + BRACKET_ATOMS
TOKEN_ID: dict[str, int] = {token: i for i, token in enumerate(VOCAB)}
VOCAB_SIZE = len(VOCAB)
assert len(TOKEN_ID) == VOCAB_SIZE, "a token is listed twice"


def split_smiles(smiles: str) -> list[str]:
    """The regex tokens of a SMILES; "".join of them is the SMILES."""
    return TOKEN_PATTERN.findall(smiles)


def smiles_token_ids(canonical_smiles: str, max_len: int = MAX_LEN) -> np.ndarray:
    """int64 ids [CLS, t_1, ..., t_n], cut to max_len ids (CLS included); unknown tokens are UNK."""
    ids = [CLS] + [TOKEN_ID.get(token, UNK) for token in split_smiles(canonical_smiles)]
    return np.asarray(ids[:max_len], dtype=np.int64)


def decode(ids: np.ndarray) -> str:
    """The SMILES spelt by ids (CLS and padding dropped); UNK comes back as '<unk>'."""
    return "".join(VOCAB[i] for i in ids.tolist() if i not in (PAD, CLS))
