"""Where a command may write, decided before any work is done: an output never resolves to the
input, an existing file is replaced only with --overwrite (or continued with --resume), and the
default output name can never be the input's own name; and how a small file (report, plot) is
written so that it is never half there (write_atomically). Standard library only, so that a
refusal costs no torch import."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

# Suffixes of the input formats hsafeat reads (hsafeat.io), stripped to name the default output.
INPUT_SUFFIXES = (".gz", ".smi", ".smiles", ".csv", ".tsv", ".txt", ".parquet")
DEFAULT_OUTPUT_SUFFIX = ".embeddings.parquet"


class DestinationError(Exception):
    """An output would replace the input or an existing file. Message is one clear line."""


def default_output(input_path: str) -> Path:
    """`<input stem>.embeddings.parquet` beside the input: `assays.csv.gz` -> `assays.embeddings.parquet`.
    The added `.embeddings` part is never stripped, so the name differs from any input's."""
    path = Path(input_path)
    stem = path.name
    while stem.lower().endswith(INPUT_SUFFIXES) and "." in stem[1:]:
        stem = stem[: stem.rindex(".")]
    return path.with_name(stem + DEFAULT_OUTPUT_SUFFIX)


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the same inode when both exist (hard links, symlinks,
    case-insensitive file systems), else the same resolved path."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def unfinished_run(output: Path) -> bool:
    """Whether an interrupted run writing `output` left parts that --resume can continue (the
    work directory and manifest of hsafeat.output.ParquetSink)."""
    return (output.parent / f".{output.name}.parts" / "manifest.json").is_file()


def check_destinations(input_path: str, outputs: dict[str, Path | None], overwrite: bool = False,
                       resume: bool = False, overwrite_hint: str = "add --overwrite") -> None:
    """Raise DestinationError unless every output (option name -> path; None: not asked for) may be
    written: none is `-` (stdout: Parquet and plots cannot be streamed), the input or another
    output, and none exists unless `overwrite`, or `resume` continues an unfinished run of it.
    overwrite_hint: how the caller says overwrite (the CLI's option, or the API's argument)."""
    chosen = [(option, Path(path)) for option, path in outputs.items() if path is not None]
    for option, path in chosen:
        if str(path) == "-":
            what = "a plot" if option == "--plot" else "Parquet"
            raise DestinationError(f"{option} -: {what} cannot be streamed to stdout; give a file path")
    source = None if input_path == "-" else Path(input_path)
    for option, path in chosen:
        if source is not None and same_file(source, path):
            raise DestinationError(f"{option} {path} is the input file; hsafeat never writes over its input, "
                                   f"choose another output name")
    for i, (option, path) in enumerate(chosen):
        for other, other_path in chosen[i + 1:]:
            if same_file(path, other_path):
                raise DestinationError(f"{option} and {other} both name {path}; give them different names")
    for option, path in chosen:
        exists = path.exists() or path.is_symlink()
        if exists and not overwrite and not (resume and unfinished_run(path)):
            raise DestinationError(f"{option} {path} already exists; {overwrite_hint} to replace it")


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """`write(temporary path)` beside `path`, fsync, then rename onto `path`: a failure never leaves
    half a file, and an older file stays as it was until the rename. The temporary name keeps the
    suffix (matplotlib picks the format by it)."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")  # made like any new file (umask)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
