"""inspect-gates reporting: the per-level Graph-Mamba share (the paper's Fig. 5) and SAF expert
usage, as a terminal table and an optional bar plot (written atomically, like every output)."""
from __future__ import annotations

import math
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hsafeat.output_paths import write_atomically


def render_table(stats: dict, weights_name: str, console: Console | None = None) -> None:
    console = console or Console()
    n_levels = len(stats["mamba_share"])
    n_experts = len(stats["expert_usage"][0]) if stats["expert_usage"] else 0
    table = Table(title=f"HAP routing (share of molecules) and SAF expert weights\n"
                        f"{weights_name}, {stats['n_valid']} valid molecules")
    table.add_column("source")
    table.add_column("→ Mamba", justify="right")
    table.add_column("→ attention", justify="right")
    for e in range(n_experts):
        table.add_column(f"expert {e}", justify="right")
    def pct(x: float) -> str:
        return "—" if math.isnan(x) else f"{x:.1%}"

    for i, source in enumerate(stats["sources"]):
        usage = ["—" if math.isnan(w) else f"{w:.3f}" for w in stats["expert_usage"][i]]
        if i < n_levels:
            share = stats["mamba_share"][i]
            table.add_row(source, pct(share), pct(1 - share), *usage)
        else:
            table.add_row(source, "—", "(always)", *usage)
    console.print(table)


def plot_formats() -> list[str]:
    """The file extensions matplotlib's savefig writes (png, pdf, svg, jpg, ...; needs matplotlib)."""
    from matplotlib.backend_bases import FigureCanvasBase

    return sorted(FigureCanvasBase.get_supported_filetypes())


def plot_format_error(path: Path) -> str | None:
    """Why `path` cannot name a plot (its extension is no format matplotlib writes), or None."""
    formats = plot_formats()
    if path.suffix[1:].lower() in formats:
        return None
    problem = f"{path.suffix} is not a format matplotlib writes" if path.suffix else "no extension names the format"
    return f"{path}: {problem}; end the name in one of {', '.join('.' + f for f in formats)}"


def save_plot(stats: dict, path: Path, weights_name: str) -> None:
    problem = plot_format_error(path)
    if problem:
        raise ValueError(problem)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shares = stats["mamba_share"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    levels = [f"H({i})" for i in range(len(shares))]
    ax.bar(levels, [100 * s for s in shares], color="#4c72b0", label="Graph-Mamba")
    ax.bar(levels, [100 * (1 - s) for s in shares], bottom=[100 * s for s in shares], color="#dd8452",
           label="cross-attention")
    ax.set_ylabel("% of molecules")
    ax.set_ylim(0, 100)
    ax.set_title(f"HAP projector choice per level ({weights_name}, n={stats['n_valid']})")
    ax.legend(loc="lower right")
    fig.tight_layout()
    # written beside the destination, then renamed: a failed save never leaves half a picture; the
    # format is given, so the temporary name and the destination name the same format
    try:
        write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=120, format=path.suffix[1:].lower()))
    finally:
        plt.close(fig)
