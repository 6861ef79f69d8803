"""The command line: a thin Typer layer. Heavy imports live inside the commands so that
`hsafeat --help` is instant; known errors print one line and exit 1 (2 for usage errors)."""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Multi-level molecular embeddings from a frozen HSA-Net encoder.")


@app.callback()
def root() -> None:
    """Multi-level molecular embeddings from a frozen HSA-Net encoder."""


def fail(message: str, code: int = 1) -> None:
    typer.echo(f"hsafeat: error: {message}", err=True)
    raise typer.Exit(code)


@app.command()
def pretrain(
    out: Annotated[Path, typer.Option("--out", "-o", help="New weights directory to create.")],
    corpus: Annotated[Path, typer.Option(help="CSV(.gz) with a SMILES first column and a header.")],
    workdir: Annotated[Path, typer.Option(help="Corpus cache, checkpoints and logs.")] = Path("pretrain-work"),
    n_molecules: Annotated[Optional[int], typer.Option(help="Seeded random subset of the corpus (default: all).")] = None,
    steps_a: Annotated[int, typer.Option(help="Stage A steps (GNN, masked attributes).")] = 2000,
    steps_b: Annotated[int, typer.Option(help="Stage B steps (HAP, motif, SAF).")] = 1000,
    batch_size: Annotated[int, typer.Option()] = 128,
    lr: Annotated[float, typer.Option()] = 1e-3,
    d_model: Annotated[int, typer.Option(help="GNN and token width.")] = 128,
    d_out: Annotated[int, typer.Option(help="SAF output width.")] = 128,
    scaffold_router: Annotated[bool, typer.Option(help="H-MoE scaffold-aware routing.")] = True,
    vocab_size: Annotated[int, typer.Option(help="Fragment vocabulary size (with UNK).")] = 2048,
    seed: Annotated[int, typer.Option()] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the checkpoint in --workdir.")] = False,
) -> None:
    """Pretrain HSA-Net (stage A: GNN; stage B: HAP + motif + SAF) and write a new weights directory."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from hsafeat.pretrain.loop import TrainConfig
    from hsafeat.pretrain.run import pretrain as run_pretrain

    if not corpus.is_file():
        fail(f"corpus not found: {corpus}", 2)
    if (out / "model.safetensors").exists():
        fail(f"{out} already holds weights; releases are immutable, choose a new name", 2)
    train = TrainConfig(steps_a=steps_a, steps_b=steps_b, batch_size=batch_size, lr=lr, seed=seed)
    log_path = workdir / "train.log"
    workdir.mkdir(parents=True, exist_ok=True)
    command = "hsafeat " + shlex.join(sys.argv[1:])

    with Progress(TextColumn("stage {task.fields[stage]}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                  transient=False, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("train", total=steps_a, stage="a", info="")

        def log(msg: str) -> None:
            with open(log_path, "a") as f:
                f.write(msg + "\n")
            bar.console.print(msg)

        def progress(stage: str, step: int, total: int, record: dict) -> None:
            losses = " ".join(f"{k}={v:.3f}" for k, v in record.items() if isinstance(v, float) and k != "elapsed_s")
            bar.update(task, completed=step, total=total, stage=stage, info=losses)
            if step % 20 == 0:
                with open(log_path, "a") as f:
                    f.write(f"{record}\n")

        digest = run_pretrain(corpus, out, workdir, n_molecules, {"d_model": d_model, "d_out": d_out,
                              "scaffold_router": scaffold_router}, train, vocab_size, resume, command, progress, log)
    typer.echo(f"wrote {out} (sha256 {digest})")


def main() -> None:
    if os.environ.get("HSAFEAT_DEBUG"):
        app()
        return
    app()


if __name__ == "__main__":
    main()
