"""Property-based tests (hypothesis): independent oracles for the input reading rules and for
molecule validity, hypothesis strategies for SMILES files and molecules, and output readers.

The oracles are written from the documented rules (README, tests/data/README.md), not from
hsafeat.io, so a change in the reader that breaks a rule shows up as a disagreement here."""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from hypothesis import strategies as st
from rdkit import Chem, rdBase

# ------------------------------------------------------------------------------- .smi reading oracle

BOM = "\ufeff"


@dataclass(frozen=True)
class ExpectedRow:
    row_idx: int
    id: str
    smiles: str


def _split_first_field(text: str) -> tuple[str, str]:
    """(first field, rest) of a line already trimmed: the first whitespace run separates them."""
    for i, ch in enumerate(text):
        if ch.isspace():
            return text[:i], text[i:].strip()
    return text, ""


def smi_expected_rows(text: str) -> list[ExpectedRow]:
    """The rows a .smi file must give, from the documented rules:

    * lines are separated by '\\n' ('\\r\\n' endings are the same lines); a leading UTF-8 BOM is ignored;
    * a line whose first non-blank character is '#' is a comment, not a row;
    * the first non-comment line is a header (not a row) when it reads `smiles`, `smiles id` or
      `smiles name` (any case);
    * a blank line (only whitespace) is a row with an empty SMILES, except a run of blank lines at
      the very end of the file;
    * the first whitespace run separates the SMILES from the id (the rest of the line, trimmed);
      a CXSMILES extension `|...|` right after the SMILES belongs to the SMILES (joined by one
      space) and the id is what follows it;
    * the id falls back to the row index when there is none."""
    if text.startswith(BOM):
        text = text[1:]
    items: list[tuple[str, str] | None] = []  # (smiles, id) or None for a blank line
    first_data_line = True
    for line in text.split("\n"):
        trimmed = line.strip()
        if trimmed.startswith("#"):
            continue
        smiles, rest = _split_first_field(trimmed)
        if first_data_line:
            first_data_line = False
            if smiles.lower() == "smiles" and rest.lower() in ("", "id", "name"):
                continue
        if not trimmed:
            items.append(None)
            continue
        if rest.startswith("|") and "|" in rest[1:]:
            close = rest.index("|", 1)
            smiles, rest = f"{smiles} {rest[: close + 1]}", rest[close + 1 :].strip()
        items.append((smiles, rest))
    while items and items[-1] is None:
        items.pop()
    rows = []
    for idx, item in enumerate(items):
        smiles, ident = item if item is not None else ("", "")
        rows.append(ExpectedRow(idx, ident or str(idx), smiles))
    return rows


def csv_expected_id(ident: str, row_idx: int) -> str:
    """CSV ids are trimmed; an empty (or all-whitespace) id falls back to the row index."""
    return ident.strip() or str(row_idx)


# ------------------------------------------------------------------------------------ validity oracle


def expected_valid(smiles: str, max_atoms: int) -> bool:
    """Valid = RDKit parses and sanitizes the trimmed string with default settings, it has 1 to
    max_atoms atoms (inclusive), plus hsafeat's own documented pre-checks: non-empty, ASCII only
    (RDKit would otherwise accept e.g. 'CCO é', reading 'é' as the molecule's name), no text after
    the SMILES other than a CXSMILES |...| block, and at most
    max(10000, 20 * max_atoms) characters."""
    s = smiles.strip()
    if not s or not s.isascii() or len(s) > max(10_000, 20 * max_atoms):
        return False
    _, _, rest = s.partition(" ") if " " in s else s.partition("\t")
    if rest.strip() and not rest.lstrip().startswith("|"):  # text after the SMILES (not CXSMILES)
        return False
    with rdBase.BlockLogs():
        try:
            mol = Chem.MolFromSmiles(s)
        except Exception:  # noqa: BLE001 - RDKit raises on a few inputs; that is "invalid" too
            return False
    return mol is not None and 1 <= mol.GetNumAtoms() <= max_atoms


# -------------------------------------------------------------------------------------- strategies

# characters that matter to the readers, mixed into otherwise random text
SPECIAL = " \t\r\x0b\x0c\x1c\x85\xa0\u2028\u3000#|\"',;()[]=@+-./\\1%$*CcNnOoS\ufeffé\U0001f600"

SMI_LINE_TEMPLATES = [
    "CCO", "c1ccccc1", "C", "N", "O", "CC(=O)O", "C1CC", "[Xy]", "Cα", "", " ", "#", "# comment",
    "smiles", "SMILES id", "smiles\tname", "Smiles Name", "CCO |$a;b;c$| ethanol", "CCO |$a;b;c$|",
    "CCO ||", "CCO |", "CCO |x| |y|", "C1=CC=CC=C1", "[Na+].[Cl-]", "C[C@H](N)C(=O)O", "*",
]


def _line_without_newline(max_size: int) -> st.SearchStrategy[str]:
    return st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\x00"),
        max_size=max_size,
    )


@st.composite
def smi_line(draw: st.DrawFn) -> str:
    """One .smi line (no '\\n'): random unicode, reader-relevant characters, SMILES-like lines
    with random ids, or long runs of one character."""
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(_line_without_newline(24))
    if kind == 1:
        return draw(st.text(alphabet=SPECIAL, max_size=24))
    if kind == 2:
        sep = draw(st.sampled_from([" ", "\t", "  ", " \t ", "\xa0", "\u3000", "\r"]))
        ident = draw(st.one_of(st.just(""), _line_without_newline(12), st.text(alphabet=SPECIAL, max_size=8)))
        lead = draw(st.sampled_from(["", " ", "\t"]))
        trail = draw(st.sampled_from(["", " ", "\r", "\t "]))
        return f"{lead}{draw(st.sampled_from(SMI_LINE_TEMPLATES))}{sep}{ident}{trail}"
    if kind == 3:
        return draw(st.sampled_from(SMI_LINE_TEMPLATES))
    if kind == 4:  # long runs; 'C' runs cross the 500-atom cap only rarely (a 500-atom chain costs 0.3 s)
        ch = draw(st.sampled_from(["(", "1", "#", " ", "|", "é", "[", "=", "C"]))
        n = draw(st.one_of(st.integers(0, 80), st.integers(495, 505) if ch == "C" else st.integers(200, 3000)))
        return ch * n
    return draw(st.sampled_from(["", " ", "\t", "\r", " \x0b\x0c", "\xa0", "\u2028", "\x85 "]))


@st.composite
def smi_text(draw: st.DrawFn) -> str:
    """A whole .smi file as text (written as UTF-8)."""
    lines = draw(st.lists(smi_line(), max_size=10))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(lines)
    text += draw(st.sampled_from(["", newline, newline * 2, newline + " " + newline]))
    if draw(st.booleans()) and draw(st.booleans()):
        text = BOM + text
    return text


# building blocks for random molecules; bonds are only added to atoms with implicit hydrogens, so
# bracket atoms (charges, [nH], stereocentres) keep their exact spelling
ACHIRAL_BLOCKS = [
    "C", "CC", "CCC", "CC(C)C", "O", "N", "CO", "CN", "C=O", "C(=O)O", "C(=O)N", "C#N", "C=C",
    "c1ccccc1", "c1ccncc1", "c1ccoc1", "c1ccsc1", "c1cc[nH]c1", "C1CC1", "C1CCCCC1", "C1CCNCC1",
    "C1COCCN1", "c1ccc2ccccc2c1", "C(F)(F)F", "S(=O)(=O)N", "[N+](=O)[O-]", "P(=O)(O)O",
    "C(=O)[O-]", "[NH3+]", "B(O)O", "C[Si](C)C", "C/C=C/C", "F/C=C\\Cl", "Cl", "Br", "I", "S",
    "c1ncncn1", "O=C1CCCN1",
]
CHIRAL_BLOCKS = ["C[C@H](N)C(=O)O", "C[C@@H](O)CC", "F[C@](Cl)(Br)C", "O[C@@H]1CCC[C@H]1N"]


@st.composite
def molecules(draw: st.DrawFn, blocks: list[str] = ACHIRAL_BLOCKS, must_include: list[str] | None = None) -> Chem.Mol:
    """A sanitized molecule composed of 1-4 building blocks joined by random single/double bonds
    (sometimes left disconnected, like a salt)."""
    names = draw(st.lists(st.sampled_from(blocks), min_size=1, max_size=4))
    if must_include:
        names.insert(draw(st.integers(0, len(names))), draw(st.sampled_from(must_include)))
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    mol = Chem.MolFromSmiles(names[0])
    for name in names[1:]:
        block = Chem.MolFromSmiles(name)
        offset = mol.GetNumAtoms()
        mol = Chem.RWMol(Chem.CombineMols(mol, block))
        if rng.random() < 0.85:
            def free(lo: int, hi: int, m: Chem.Mol = mol) -> list[int]:
                return [a.GetIdx() for a in m.GetAtoms()
                        if lo <= a.GetIdx() < hi and not a.GetNoImplicit() and a.GetTotalNumHs() > 0]

            left, right = free(0, offset), free(offset, mol.GetNumAtoms())
            if left and right:
                a, b = rng.choice(left), rng.choice(right)
                double = (mol.GetAtomWithIdx(a).GetTotalNumHs() >= 2 and mol.GetAtomWithIdx(b).GetTotalNumHs() >= 2
                          and not mol.GetAtomWithIdx(a).GetIsAromatic() and not mol.GetAtomWithIdx(b).GetIsAromatic()
                          and rng.random() < 0.3)
                mol.AddBond(a, b, Chem.BondType.DOUBLE if double else Chem.BondType.SINGLE)
        mol = mol.GetMol()
        with rdBase.BlockLogs():
            try:
                Chem.SanitizeMol(mol)
            except Exception:  # noqa: BLE001
                mol = None
        if mol is None:  # e.g. a valence the bond broke: round-trip through SMILES or give up
            return Chem.MolFromSmiles(names[0])
    # normalise through SMILES so the molecule is exactly what a parser makes of it
    with rdBase.BlockLogs():
        again = Chem.MolFromSmiles(Chem.MolToSmiles(mol))
    return again if again is not None else Chem.MolFromSmiles(names[0])


def spellings(mol: Chem.Mol, seed: int, n_random: int) -> list[str]:
    """Different SMILES of one molecule: canonical, non-canonical, Kekulé, explicit hydrogens,
    rooted at another atom, and random atom orders."""
    out = [Chem.MolToSmiles(mol), Chem.MolToSmiles(mol, canonical=False)]
    kek = Chem.Mol(mol)
    Chem.Kekulize(kek, clearAromaticFlags=True)
    out.append(Chem.MolToSmiles(kek, kekuleSmiles=True))
    out.append(Chem.MolToSmiles(Chem.AddHs(mol)))
    out.append(Chem.MolToSmiles(mol, canonical=False, rootedAtAtom=seed % mol.GetNumAtoms()))
    out += list(Chem.MolToRandomSmilesVect(mol, n_random, randomSeed=seed))
    return out


MUTATION_ALPHABET = "CNOSFcno()[]=#@+-123.%/\\Hx "
INVALID_EXAMPLES = [
    "", " ", "\t\r", "C1CC", "c1cccc1", "[Xy]", "Xyz", "C(C", "CC)(", "FF(F)(F)F", "C%", "Cα",
    "CCO é", "c1ccccc1\u00a0", "C" * 501, "[C@@]", "C=", "1CC1", "#", "|",
]


@st.composite
def mixed_smiles(draw: st.DrawFn) -> str:
    """A SMILES that may or may not be valid: generated molecules, their mutations (one char
    deleted, inserted or replaced), known-invalid strings and random text."""
    kind = draw(st.integers(0, 4))
    if kind <= 1:
        mol = draw(molecules())
        s = Chem.MolToSmiles(mol, canonical=False, doRandom=False)
        if kind == 1 and s:
            pos = draw(st.integers(0, len(s)))
            op = draw(st.sampled_from(["delete", "insert", "replace"]))
            ch = draw(st.sampled_from(MUTATION_ALPHABET))
            if op == "delete" and pos < len(s):
                s = s[:pos] + s[pos + 1 :]
            elif op == "insert":
                s = s[:pos] + ch + s[pos:]
            elif pos < len(s):
                s = s[:pos] + ch + s[pos + 1 :]
        return s
    if kind == 2:
        return draw(st.sampled_from(INVALID_EXAMPLES))
    if kind == 3:
        return draw(st.text(alphabet=SPECIAL, max_size=12))
    return draw(st.text(max_size=8))


@st.composite
def csv_ids(draw: st.DrawFn) -> str:
    """An id with the characters that need CSV quoting (and everything else but NUL)."""
    tricky = st.text(alphabet=",\"'\n\r\t ;|#\\é\u2028\x85abc123", max_size=12)
    anything = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
    return draw(st.one_of(tricky, anything))


# ------------------------------------------------------------------------------------- output readers


def embedding_matrix(table: pa.Table, name: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(n x dim float32 with NaN on null rows, n bool 'row is null'), for list or wide layout."""
    if name in table.column_names:
        col = table.column(name).combine_chunks()
        assert pa.types.is_fixed_size_list(col.type) and col.type.list_size == dim, col.type
        values = col.values.to_numpy(zero_copy_only=False).reshape(len(col), dim).astype(np.float32)
        null = ~np.asarray(col.is_valid())
    else:
        width = max(3, len(str(dim - 1)))
        cols = [table.column(f"{name}_{i:0{width}d}").combine_chunks() for i in range(dim)]
        values = np.stack([c.to_numpy(zero_copy_only=False) for c in cols], axis=1).astype(np.float32) if cols else \
            np.zeros((len(table), 0), np.float32)
        nulls = np.stack([~np.asarray(c.is_valid()) for c in cols], axis=1)
        assert (nulls.all(axis=1) | ~nulls.any(axis=1)).all(), "a wide row is partly null"
        null = nulls.all(axis=1)
    values = values.copy()
    values[null] = np.nan
    return values, null
