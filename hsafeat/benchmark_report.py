"""The outputs of `hsafeat benchmark`: a Markdown table, the JSON of every number, and a plot."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def fmt_score(value: float | None) -> str:
    """A score as the table prints it."""
    return "n/a" if value is None else f"{value:.4f}"


def markdown_table(result: dict[str, Any]) -> str:
    """Rows = datasets, columns = featurizers, cell = best-of-heads mean over seeds (n/a where no
    split could be scored); the best of each row in bold, all of them on a tie."""
    names = result["featurizers"]
    lines = ["| dataset | metric | " + " | ".join(names) + " |", "|---|---|" + "---:|" * len(names)]
    for name, d in result["datasets"].items():
        values = [d["results"][f]["best"] for f in names]
        scored = [v for v in values if v is not None]
        top = (max if d["higher_is_better"] else min)(scored) if scored else None
        cells = [f"**{fmt_score(v)}**" if v is not None and v == top else fmt_score(v) for v in values]
        arrow = "↑" if d["higher_is_better"] else "↓"
        lines.append(f"| {name} (n={d['n']}) | {d['metric']} {arrow} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(result: dict[str, Any], out_dir: Path) -> list[Path]:
    """benchmark.md (the table and how it was made) and benchmark.json (every number)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / "benchmark.md", out_dir / "benchmark.json"
    w = result["weights"]
    note = (f"Cell: test score of the best head ({', '.join(result['heads'])}), mean over split seeds "
            f"{', '.join(map(str, result['seeds']))}; each head tuned on valid, refit on train+valid, balanced scaffold "
            "split 80/10/10. Per-head, per-seed values: benchmark.json.")
    if w:
        note += f" Weights: {w['name']} ({w['sha256'][:12]})."
    md.write_text(f"# hsafeat benchmark\n\n{markdown_table(result)}\n\n{note}\n")
    js.write_text(json.dumps(result, indent=1, allow_nan=False) + "\n")
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
    fig.savefig(path, dpi=120)
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
    fig.savefig(path, dpi=120)
    plt.close(fig)
