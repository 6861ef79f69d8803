"""The outputs of `hsafeat benchmark`: a Markdown table, the JSON of every number, and a plot,
each written atomically (a temporary file beside it, then a rename) into a folder checked before
any work (`check_out_dir`)."""
from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hsafeat.output_paths import write_atomically

REPORT_FILES = ("benchmark.md", "benchmark.json")
PLOT_FILE = "benchmark.png"


class OutDirError(Exception):
    """--out-dir cannot be created or written. Message is one clear line."""


def report_paths(out_dir: Path, plot: bool) -> list[Path]:
    """Every file a run writes into `out_dir` (the plot only where it can be drawn)."""
    return [out_dir / name for name in (*REPORT_FILES, *([PLOT_FILE] if plot else []))]


def check_out_dir(out_dir: Path, inputs: Sequence[Path], overwrite: bool, plot: bool) -> None:
    """Raise DestinationError or OutDirError unless every report file may be written: none is a
    dataset file, a folder, or (without `overwrite`) an existing file, and `out_dir` is a folder or
    can be made one. Creates nothing (`make_out_dir` does)."""
    from hsafeat.output_paths import check_destinations

    existing = out_dir
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise OutDirError(f"--out-dir {out_dir}: {existing} is not a directory")
    for path in report_paths(out_dir, plot):
        if path.is_dir():
            raise OutDirError(f"--out-dir {out_dir}: {path} is a directory")
        for source in inputs:
            check_destinations(str(source), {"--out-dir": path}, overwrite)


def make_out_dir(out_dir: Path) -> list[Path]:
    """Create `out_dir` (and missing parents) and check that a file can be written there; return
    the folders it created, deepest first (`remove_dirs` takes them back when nothing is written)."""
    created = []
    path = out_dir
    while not path.exists() and path.parent != path:
        created.append(path)
        path = path.parent
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".benchmark-probe-"):
            pass
    except OSError as exc:
        remove_dirs(created)
        raise OutDirError(f"--out-dir {out_dir} cannot be created or written: {exc.strerror or exc}") from exc
    return created


def remove_dirs(created: Sequence[Path]) -> None:
    """Remove folders `make_out_dir` created, deepest first, as long as they are empty."""
    for path in created:
        try:
            path.rmdir()
        except OSError:
            return


def fmt_score(value: float | None) -> str:
    """A score as the table prints it."""
    return "n/a" if value is None else f"{value:.4f}"


def _dataset_cell(name: str, d: dict[str, Any]) -> str:
    unreadable = d.get("n_unreadable", 0)
    return f"{name} (n={d['n']}, {unreadable} unreadable (zero rows))" if unreadable else f"{name} (n={d['n']})"


def _score_cell(value: float | None, top: float | None, r: dict[str, Any], d: dict[str, Any]) -> str:
    """The score (bold when the row's best), and the featurizer's own count of zero rows where it
    differs from the dataset's unreadable SMILES (a featurizer stricter or laxer than RDKit)."""
    cell = f"**{fmt_score(value)}**" if value is not None and value == top else fmt_score(value)
    zero = r.get("n_zero_rows")
    if zero is not None and zero != d.get("n_unreadable", 0):
        cell += f" ({zero} zero rows)"
    return cell


def table_notes(result: dict[str, Any]) -> list[str]:
    """One line per dataset with seed/task runs that could not be scored, and why."""
    lines = []
    runs = len(result["seeds"])
    for name, d in result["datasets"].items():
        skipped = d.get("skipped") or []
        if skipped:
            total = runs * len(d["tasks"])
            first = skipped[0]
            which = "no run" if len(skipped) == total else f"{len(skipped)} of {total} seed/task runs"
            rest = "n/a" if len(skipped) == total else "cells are means over the other runs"
            lines.append(f"- {name}: {which} could be scored (seed {first['seed']}, task {first['task']}: "
                         f"{first['reason']}); {rest}.")
    return lines


def markdown_table(result: dict[str, Any]) -> str:
    """Rows = datasets, columns = featurizers, cell = best-of-heads mean over seeds (n/a where no
    split could be scored, said why below the table); the best of each row in bold, all of them on a
    tie. Unreadable SMILES (scored as rows of zeros) are counted in the dataset cell."""
    names = result["featurizers"]
    lines = ["| dataset | metric | " + " | ".join(names) + " |", "|---|---|" + "---:|" * len(names)]
    for name, d in result["datasets"].items():
        values = [d["results"][f]["best"] for f in names]
        scored = [v for v in values if v is not None]
        top = (max if d["higher_is_better"] else min)(scored) if scored else None
        cells = [_score_cell(v, top, d["results"][f], d) for v, f in zip(values, names)]
        arrow = "↑" if d["higher_is_better"] else "↓"
        lines.append(f"| {_dataset_cell(name, d)} | {d['metric']} {arrow} | " + " | ".join(cells) + " |")
    notes = table_notes(result)
    return "\n".join(lines + ([""] + notes if notes else []))


def write_report(result: dict[str, Any], out_dir: Path) -> list[Path]:
    """benchmark.md (the table and how it was made) and benchmark.json (every number), each written
    atomically; `out_dir` must exist (`make_out_dir`)."""
    md, js = (out_dir / name for name in REPORT_FILES)
    w = result["weights"]
    note = (f"Cell: test score of the best head ({', '.join(result['heads'])}), mean over split seeds "
            f"{', '.join(map(str, result['seeds']))}; each head tuned on valid, refit on train+valid, balanced scaffold "
            "split 80/10/10. SMILES a featurizer cannot read are kept and scored as rows of zeros (the reference "
            "protocol); the dataset cell counts those RDKit cannot read. Per-head, per-seed values, versions and "
            "split sizes: benchmark.json.")
    if w:
        note += f" Weights: {w['name']} ({w['sha256'][:12]})."
    text = f"# hsafeat benchmark\n\n{markdown_table(result)}\n\n{note}\n"
    data = json.dumps(result, indent=1, allow_nan=False) + "\n"
    write_atomically(md, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    write_atomically(js, lambda tmp: tmp.write_text(data, encoding="utf-8"))
    return [md, js]


def _plot_absolute(result: dict[str, Any], name: str, path: Path, plt: Any) -> None:
    """One featurizer: its best score per dataset, labelled with the metric."""
    datasets = result["datasets"]
    values = [np.nan if d["results"][name]["best"] is None else d["results"][name]["best"] for d in datasets.values()]
    fig, ax = plt.subplots(figsize=(7.0, 4))
    bars = ax.bar(np.arange(len(values)), values, 0.6, label=name)
    for bar, d, v in zip(bars, datasets.values(), values):
        ax.annotate(f"{d['metric']} {v:.3f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize="small")
    ax.set_xticks(np.arange(len(values)), list(datasets))
    ax.set_ylabel("best score (AUROC higher, RMSE lower is better)")
    ax.set_title(f"hsafeat benchmark: {name}, best head, mean over seeds")
    fig.tight_layout()
    _save(fig, path, plt)


def _save(fig: Any, path: Path, plt: Any) -> None:
    try:
        write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=120, format=path.suffix[1:].lower() or "png"))
    finally:
        plt.close(fig)


def save_plot(result: dict[str, Any], path: Path) -> None:
    """Grouped bars, one group per dataset: each featurizer's best score relative to ECFP (or to the
    first featurizer without ECFP), inverted for RMSE so that above 1 is always better. Needs matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = result["featurizers"]
    if len(names) == 1:  # nothing to compare with: a ratio to itself would draw no bars
        _plot_absolute(result, names[0], path, plt)
        return
    reference = "ecfp" if "ecfp" in names else names[0]
    shown = [f for f in names if f != reference] or names
    x = np.arange(len(result["datasets"]))
    fig, ax = plt.subplots(figsize=(max(7.0, 2.5 + 0.18 * len(shown) * len(x)), 4))
    colors = plt.get_cmap("tab20").colors  # type: ignore[attr-defined]  # tab20 is a ListedColormap
    for k, f in enumerate(shown):
        ratios = []
        for d in result["datasets"].values():
            value, ref = (np.nan if d["results"][g]["best"] is None else d["results"][g]["best"] for g in (f, reference))
            ratios.append(np.divide(value, ref) if d["higher_is_better"] else np.divide(ref, value))
        ax.bar(x + (k - (len(shown) - 1) / 2) * 0.8 / len(shown), np.subtract(ratios, 1.0), 0.8 / len(shown), bottom=1.0, label=f,
               color=colors[k % len(colors)])
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(x, list(result["datasets"]))
    ax.set_ylabel(f"score relative to {reference} (>1 better)")
    ax.set_title("hsafeat benchmark: best head, mean over seeds (RMSE inverted)")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    _save(fig, path, plt)
