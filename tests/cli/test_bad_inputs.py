"""Bad inputs, each with one defined outcome (the policy table is tests/data/README.md):

* row-level problems keep the row: valid=false, an error string, null embeddings, exit 0;
* problems with the input or the run as a whole: exit 2 (exit 1 for a read error found mid-run),
  exactly one stderr line starting 'hsafeat: error:', no traceback, no output file.

The committed corpus lives in tests/data/bad/; the 10 MB line is generated here."""
from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import Result

from tests.cli import (  # single_thread_torch: an autouse fixture
    BAD,
    EXAMPLES,
    assert_no_crash,
    assert_ok,
    assert_one_line_error,
    data_lines,
    embedding_matrix,
    invoke,
    metadata,
    read,
    single_thread_torch,  # noqa: F401
    tmp_leftovers,
)

EMBEDDING_COLUMNS = ["fused", "motif"]  # enough to check null-vs-value alignment; keeps files small

Embedded = Callable[..., tuple[Result, Path]]


@pytest.fixture(scope="module")
def embed(tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Embedded:
    """embed(path, *extra_args) -> (result, output path); each distinct call runs once per module."""
    cache: dict[tuple, tuple[Result, Path]] = {}
    outdir = tmp_path_factory.mktemp("bad-out")

    def run(src: Path, *extra: str) -> tuple[Result, Path]:
        key = (str(src), extra)
        if key not in cache:
            out = outdir / f"{len(cache)}.parquet"
            cache[key] = invoke(["embed", src, "-o", out, "--levels", ",".join(EMBEDDING_COLUMNS), *extra],
                                tiny_weights), out
        return cache[key]

    return run


def rows_of(embed: Embedded, name: str, *extra: str) -> list[dict]:
    result, out = embed(BAD / name, *extra)
    assert_ok(result)
    return read(out, ["row_idx", "id", "smiles", "canonical_smiles", "valid", "error"]).to_pylist()


def by_id(rows: list[dict]) -> dict[str, dict]:
    return {r["id"]: r for r in rows}


# ============================================================ row-level cases: the generic contract

NON_ASCII_CRASH = ("parse.py reads rdBase.CaptureErrorLog().messages, which raises UnicodeDecodeError when "
                   "RDKit's 'check for mistakes around position' excerpt cuts a multi-byte character: one "
                   "non-ASCII SMILES aborts the whole run")

ROW_CASES = [
    "blank_lines.smi", "comments.smi", "crlf.smi", "crlf.csv", "bom.smi", "bom.csv", "latin1_ids.smi",
    "duplicate_ids.smi", "duplicate_ids.csv", "chemistry.smi", "huge_molecule.smi", "cxsmiles.smi",
    "cxsmiles.csv", "empty_smiles.csv", "empty.smi", "header_only.csv", "blank_only.smi", "comments_only.smi",
    "latin1_smiles.smi",
    "unicode_smiles.smi",
]


@pytest.mark.parametrize("name", ROW_CASES)
def test_row_level_case_keeps_every_row(embed: Embedded, name: str) -> None:
    result, out = embed(BAD / name)
    assert_ok(result)
    assert "Traceback" not in result.output
    expected = len(data_lines(BAD / name))
    t = read(out)
    assert t.num_rows == expected
    assert t.column("row_idx").to_pylist() == list(range(expected))
    valid = np.asarray(t.column("valid").to_pylist(), dtype=bool)
    errors = t.column("error").to_pylist()
    for ok, err in zip(valid, errors, strict=True):
        assert (err is None) if ok else (isinstance(err, str) and err.strip()), (ok, err)
    for col in EMBEDDING_COLUMNS:
        assert t.column(col).is_null().to_pylist() == list(~valid)
        assert np.isfinite(embedding_matrix(t, col)[valid]).all()
    meta = metadata(out)
    assert meta["rows"] == {"total": expected, "valid": int(valid.sum()), "invalid": int((~valid).sum())}
    assert f"{expected} molecules" in result.stderr


# ============================================================ row-level cases: specifics


def test_blank_lines_are_invalid_rows_trailing_blanks_dropped(embed: Embedded) -> None:
    rows = rows_of(embed, "blank_lines.smi")
    assert [r["smiles"] for r in rows] == ["CCO", "", "C", "", "", "CC"]
    assert [r["valid"] for r in rows] == [True, False, True, False, False, True]
    for r in rows:
        if not r["valid"]:
            assert r["error"] == "empty SMILES"
            assert r["id"] == str(r["row_idx"])


def test_comment_lines_are_not_rows(embed: Embedded) -> None:
    rows = rows_of(embed, "comments.smi")
    assert [(r["row_idx"], r["id"]) for r in rows] == [(0, "ethanol"), (1, "methane"), (2, "ethane")]
    assert all(r["valid"] for r in rows)


@pytest.mark.parametrize("name", ["crlf.smi", "crlf.csv"])
def test_crlf_line_endings(embed: Embedded, name: str) -> None:
    rows = rows_of(embed, name)
    for r in rows:
        assert "\r" not in r["id"] and "\r" not in r["smiles"], r
    named = [r for r in rows if r["smiles"]]
    assert [(r["id"], r["smiles"], r["valid"]) for r in named] == [
        ("ethanol", "CCO", True), ("unclosed", "C1CC", False), ("methane", "C", True)]


@pytest.mark.parametrize("name", ["bom.smi", "bom.csv"])
def test_utf8_bom_is_ignored(embed: Embedded, name: str) -> None:
    rows = rows_of(embed, name)
    # bom.csv starts with '\ufeffid': the id column is only found if the BOM is stripped
    assert [(r["id"], r["smiles"], r["valid"]) for r in rows] == [("ethanol", "CCO", True), ("methane", "C", True)]


def test_non_utf8_bytes_are_replaced_not_fatal(embed: Embedded) -> None:
    rows = rows_of(embed, "latin1_ids.smi")
    assert [r["valid"] for r in rows] == [True, True, False]
    assert rows[0]["id"] == "caf\ufffd" and rows[1]["id"] == "m\ufffdller"
    assert rows[2]["smiles"] == "C\ufffdC" and rows[2]["error"]


@pytest.mark.parametrize("name", ["latin1_smiles.smi", "unicode_smiles.smi"])
def test_non_ascii_smiles_are_invalid_rows(embed: Embedded, name: str) -> None:
    rows = rows_of(embed, name)
    assert rows[0]["id"] == "ethanol" and rows[0]["valid"]
    assert rows[-1]["id"] == "methane" and rows[-1]["valid"]
    for r in rows[1:-1]:
        assert not r["valid"] and r["error"], r


@pytest.mark.parametrize("name", ["duplicate_ids.smi", "duplicate_ids.csv"])
def test_duplicate_ids_are_kept(embed: Embedded, name: str) -> None:
    rows = rows_of(embed, name)
    assert [(r["id"], r["smiles"]) for r in rows] == [("mol1", "CCO"), ("mol1", "CC"), ("mol2", "C"), ("mol1", "C1CC")]
    assert [r["valid"] for r in rows] == [True, True, True, False]


# id in chemistry.smi -> (valid, a fragment of the error or, for valid rows, of the canonical SMILES)
CHEMISTRY = {
    "invalid_valence": (False, "valence"),
    "unclosed_ring": (False, "unclosed ring"),
    "unknown_element_bracket": (False, "[Xy]"),
    "unknown_element_bare": (False, "Xyz"),
    "bad_aromatic": (False, "kekulize"),
    "bad_ring_bond": (False, "C%"),
    "wildcard": (True, "*"),              # dummy atom: atomic number 0 has its own feature slot
    "wildcard_both_ends": (True, "*"),
    "isotope": (True, "[13CH4]"),         # isotope label kept in canonical_smiles
    "deuterium": (True, "[2H]"),
    "radical": (True, "[CH3]"),
    "dative_bond": (True, "->"),          # dative bonds use the bond-type "other" slot
    "cisplatin_dative": (True, "[Pt]"),
    "grignard": (True, "[Mg]"),
    "ferrocene_ionic": (True, "[Fe+2]"),
    "uranium_atom": (True, "[U]"),
    "sodium_chloride": (True, "."),       # no salt stripping: all fragments are embedded
    "sodium_acetate": (True, "."),
    "amine_hydrochloride": (True, "."),
    "ethanol": (True, "CCO"),
}


def test_chemistry_corpus_covers_the_table(embed: Embedded) -> None:
    assert sorted(by_id(rows_of(embed, "chemistry.smi"))) == sorted(CHEMISTRY)


@pytest.mark.parametrize("case", sorted(CHEMISTRY))
def test_chemistry_case(embed: Embedded, case: str) -> None:
    row = by_id(rows_of(embed, "chemistry.smi"))[case]
    valid, fragment = CHEMISTRY[case]
    assert row["valid"] is valid, row
    if valid:
        assert row["error"] is None and fragment in row["canonical_smiles"], row
    else:
        assert row["canonical_smiles"] is None and fragment.lower() in row["error"].lower(), row


def test_atom_cap(embed: Embedded) -> None:
    rows = by_id(rows_of(embed, "huge_molecule.smi"))
    for case, n in [("chain_600", 600), ("chain_501", 501)]:
        assert not rows[case]["valid"]
        assert "limit" in rows[case]["error"] and str(n) in rows[case]["error"] and "500" in rows[case]["error"]
    assert rows["chain_500"]["valid"]  # the cap is inclusive
    assert rows["ethanol"]["valid"]


def test_cxsmiles_in_csv(embed: Embedded) -> None:
    rows = by_id(rows_of(embed, "cxsmiles.csv"))
    assert rows["ethanol"]["valid"] and rows["ethanol"]["smiles"] == "CCO |$a;b;c$|"
    assert rows["ethanol"]["canonical_smiles"] == "CCO"
    assert rows["methane"]["valid"]


def test_cxsmiles_in_smi_keeps_extension_with_the_smiles(embed: Embedded) -> None:
    rows = rows_of(embed, "cxsmiles.smi")
    assert [r["id"] for r in rows] == ["ethanol", "methane"]
    assert rows[0]["smiles"] == "CCO |$a;b;c$|" and rows[0]["valid"]


def test_empty_smiles_in_csv(embed: Embedded) -> None:
    rows = rows_of(embed, "empty_smiles.csv")
    assert [r["id"] for r in rows] == ["quoted_empty", "bare_empty", "spaces_only", "ethanol"]
    assert [r["valid"] for r in rows] == [False, False, False, True]
    assert all(r["error"] == "empty SMILES" for r in rows[:3])


@pytest.mark.parametrize("name", ["empty.smi", "header_only.csv", "blank_only.smi", "comments_only.smi"])
def test_no_molecules_gives_an_empty_file(embed: Embedded, name: str) -> None:
    result, out = embed(BAD / name)
    assert_ok(result)
    t = read(out)
    assert t.num_rows == 0
    assert t.column_names[-2:] == EMBEDDING_COLUMNS  # the schema is complete, so 0-row files concatenate
    assert metadata(out)["rows"] == {"total": 0, "valid": 0, "invalid": 0}


@pytest.mark.parametrize("fmt", ["smi", "csv"])
def test_ten_megabyte_line(tiny_weights: Path, tmp_path: Path, fmt: str) -> None:
    big = "C" * 10_000_000
    src = tmp_path / f"big.{fmt}"
    if fmt == "smi":
        src.write_text(f"CCO first\n{big} big\nCC last\n")
    else:
        src.write_text(f"smiles,id\nCCO,first\n{big},big\nCC,last\n")
    out = tmp_path / "big.parquet"
    result = invoke(["embed", src, "-o", out, "--levels", "fused"], tiny_weights)
    assert_ok(result)
    rows = read(out, ["id", "valid", "error"]).to_pylist()
    assert [(r["id"], r["valid"]) for r in rows] == [("first", True), ("big", False), ("last", True)]
    assert "10000000 characters" in rows[1]["error"] and "limit" in rows[1]["error"]


# ============================================================ input-level errors: exit 2, one line


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out.parquet"


def test_missing_file(tiny_weights: Path, tmp_path: Path, out: Path) -> None:
    result = invoke(["embed", tmp_path / "no_such_file.smi", "-o", out], tiny_weights)
    assert_one_line_error(result, 2, "not found", "no_such_file.smi")
    assert not out.exists()


def test_directory_as_input(tiny_weights: Path, tmp_path: Path, out: Path) -> None:
    (tmp_path / "adir").mkdir()
    assert_one_line_error(invoke(["embed", tmp_path / "adir", "-o", out], tiny_weights), 2, "directory")
    assert not out.exists()


def test_binary_garbage(tiny_weights: Path, out: Path) -> None:
    result = invoke(["embed", BAD / "binary_garbage.bin", "-o", out], tiny_weights)
    assert_one_line_error(result, 2, "binary")
    assert not out.exists()


def test_csv_without_smiles_column(tiny_weights: Path, out: Path) -> None:
    result = invoke(["embed", BAD / "no_smiles_column.csv", "-o", out], tiny_weights)
    assert_one_line_error(result, 2, "no SMILES column", "name, mw", "--smiles-column")
    assert not out.exists()


def test_wrong_smiles_column(tiny_weights: Path, out: Path) -> None:
    result = invoke(["embed", BAD / "duplicate_ids.csv", "-o", out, "--smiles-column", "structure"], tiny_weights)
    assert_one_line_error(result, 2, "'structure'", "smiles, id")
    assert not out.exists()


def test_wrong_id_column(tiny_weights: Path, out: Path) -> None:
    result = invoke(["embed", BAD / "duplicate_ids.csv", "-o", out, "--id-column", "cid"], tiny_weights)
    assert_one_line_error(result, 2, "'cid'")


GZ_COLUMNS = ("for gzipped CSV/TSV InputSource skips the up-front column check (`not gz`), so a bad column is "
              "found mid-run: exit 1, after the weights were loaded")


def test_gzipped_csv_without_smiles_column(tiny_weights: Path, out: Path) -> None:
    result = invoke(["embed", BAD / "no_smiles_column.csv.gz", "-o", out], tiny_weights)
    assert_one_line_error(result, 2, "no SMILES column")


def test_gzipped_csv_wrong_smiles_column(tiny_weights: Path, tmp_path: Path, out: Path) -> None:
    src = tmp_path / "in.csv.gz"
    src.write_bytes(gzip.compress((BAD / "duplicate_ids.csv").read_bytes(), mtime=0))
    result = invoke(["embed", src, "-o", out, "--smiles-column", "structure"], tiny_weights)
    assert_one_line_error(result, 2, "'structure'")


def test_not_a_parquet_file(tiny_weights: Path, out: Path) -> None:
    result = invoke(["embed", BAD / "not_parquet.parquet", "-o", out], tiny_weights)
    assert_one_line_error(result, 2, "not_parquet.parquet")


def test_output_directory_missing_fails_before_any_work(tmp_path: Path) -> None:
    """Checked first: the bogus weights are never looked at."""
    target = tmp_path / "no" / "such" / "dir" / "out.parquet"
    result = invoke(["embed", EXAMPLES, "-o", target, "--weights", str(tmp_path / "no-weights")])
    assert_one_line_error(result, 2, "does not exist")
    assert not (tmp_path / "no").exists()


def test_output_is_a_directory(tiny_weights: Path, tmp_path: Path) -> None:
    assert_one_line_error(invoke(["embed", EXAMPLES, "-o", tmp_path], tiny_weights), 2, "directory")


@pytest.fixture
def weights_copy(tiny_weights: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "tiny-copy"
    shutil.copytree(tiny_weights, copy)
    return copy


def test_corrupted_weights(weights_copy: Path, out: Path) -> None:
    blob = weights_copy / "model.safetensors"
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    result = invoke(["embed", EXAMPLES, "-o", out], weights_copy)
    assert_one_line_error(result, 2, "checksum", "model.safetensors")
    assert not out.exists()


def test_unknown_weights_format_version(weights_copy: Path, out: Path) -> None:
    config = json.loads((weights_copy / "config.json").read_text())
    config["format_version"] = 99
    (weights_copy / "config.json").write_text(json.dumps(config))
    result = invoke(["embed", EXAMPLES, "-o", out], weights_copy)
    assert_one_line_error(result, 2, "format version", "99", "config.json")
    assert not out.exists()


def test_missing_weights(tmp_path: Path, out: Path) -> None:
    result = invoke(["embed", EXAMPLES, "-o", out, "--weights", str(tmp_path / "nowhere")])
    assert_one_line_error(result, 2, "not found")


# ============================================================ read error mid-run: exit 1, one line


def test_truncated_gzip(tiny_weights: Path, tmp_path: Path, out: Path) -> None:
    result = invoke(["embed", BAD / "truncated.smi.gz", "-o", out], tiny_weights)
    assert_one_line_error(result, 1, "truncated.smi.gz")
    assert not out.exists()
    assert tmp_leftovers(tmp_path) == []


# ============================================================ inspect-gates shares the contract


@pytest.mark.parametrize("name, code", [("no_smiles_column.csv", 2), ("truncated.smi.gz", 1)])
def test_inspect_gates_input_errors(tiny_weights: Path, tmp_path: Path, name: str, code: int) -> None:
    out = tmp_path / "gates.parquet"
    result = invoke(["inspect-gates", BAD / name, "-o", out], tiny_weights)
    assert_one_line_error(result, code)
    assert not out.exists()
    assert tmp_leftovers(tmp_path) == []


def test_inspect_gates_keeps_invalid_rows(tiny_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "gates.parquet"
    result = invoke(["inspect-gates", BAD / "blank_lines.smi", "-o", out], tiny_weights)
    assert_no_crash(result)
    assert result.exit_code == 0
    t = read(out, ["row_idx", "valid"])
    assert t.num_rows == 6 * 7
    assert t.column("valid").to_pylist()[::7] == [True, False, True, False, False, True]


# ============================================================ the real entry point


def test_real_process_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    """CliRunner bypasses hsafeat.cli.main (the catch-all for unexpected errors); check once what a
    user's shell sees: exit 2, a single stderr line, nothing on stdout, no traceback."""
    proc = subprocess.run([sys.executable, "-m", "hsafeat", "embed", str(tmp_path / "missing.smi"), "-o",
                           str(tmp_path / "out.parquet")], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HSAFEAT_DEBUG": ""})
    assert proc.returncode == 2, proc
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [f"hsafeat: error: input file not found: {tmp_path / 'missing.smi'}"]


def test_usage_errors_do_not_load_torch(tmp_path: Path) -> None:
    code = ("import sys\nfrom hsafeat.cli import main\ntry:\n    main()\nexcept SystemExit as e:\n"
            "    print(e.code, 'torch' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code, "embed", str(EXAMPLES), "-o",
                           str(tmp_path / "no" / "dir" / "out.parquet")], capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["2", "False"], proc
