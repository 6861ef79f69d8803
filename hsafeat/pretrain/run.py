"""`hsafeat pretrain`: one command makes a whole release.

corpus cache -> stages A, B, C (loop.py) -> the descriptor readout fit (readout_fit.py) -> the
release directory (tensors, config.json, desc_targets.json, then card.json, written by code).
Every sitting of the run is resumable: <workdir>/run.json records the options and the commit the
run started with, checkpoint.pt the stages, readout.pt the readout fit. A resumed run must have
the same options; its release equals an uninterrupted run's, tensor for tensor.

Problems with the run as a whole (impossible option values, an output that cannot become a new
release, a corpus with too few molecules) are found by preflight(), before the workdir is made
or the corpus featurized. SIGINT or SIGTERM during the stages or the readout fit finish the step
(epoch) under way, write the checkpoint --stop-after would write there, and raise RunInterrupted."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import torch

from hsafeat.chem.features import ATOM_FEATURES, BOND_FEATURES
from hsafeat.chem.parse import MAX_ATOMS
from hsafeat.chem.smiles_tokens import VOCAB_SIZE as SMILES_VOCAB_SIZE
from hsafeat.hashing import sha256_file
from hsafeat.nn.config import EncoderConfig
from hsafeat.pretrain.card import build_card, desc_targets, git_state, readout_section
from hsafeat.pretrain.corpus import Corpus, attach_smiles_tokens, load_cache, prepare, read_corpus_lines, too_few_molecules
from hsafeat.pretrain.loop import Trainer
from hsafeat.pretrain.options import PretrainOptions
from hsafeat.pretrain.readout_fit import ReadoutFit
from hsafeat.weights import DESC_TARGETS_FILE, LoadedWeights, load_weights, save_release

Progress = Callable[[str, int, int, dict], None]


class RunInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped the run at a step boundary, its checkpoint written (one-line message)."""


def min_molecules(opts: PretrainOptions) -> int:
    """Molecules that must parse: the descriptor targets are standardised over the corpus (one
    molecule leaves none that vary), and the readout fit holds one out and standardises its
    features over at least two others."""
    return 3 if opts.readout != "none" else 2


def _creatable(path: Path, option: str) -> None:
    """Raise ValueError unless a directory could be made at `path` (probed in its nearest existing
    ancestor: a permission check alone passes for root, and /proc refuses even root)."""
    ancestor = Path(os.path.abspath(path)).parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"{option} {path} cannot be created: {ancestor} is not a directory")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=f".{path.name}.probe-", dir=ancestor))
    except OSError as exc:
        raise ValueError(f"{option} {path} cannot be created in {ancestor}: {exc.strerror or exc}") from None


def check_destinations(opts: PretrainOptions) -> None:
    """--out must be able to become a new release directory, and --workdir the run's directory."""
    out, workdir = opts.out, opts.workdir
    absolute_out, absolute_work = Path(os.path.abspath(out)), Path(os.path.abspath(workdir))
    if absolute_out == absolute_work or absolute_out in absolute_work.parents:
        raise ValueError(f"--workdir {workdir} must be outside --out {out}: the release is a new directory of its "
                         "own, the workdir keeps the corpus cache and checkpoints")
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise ValueError(f"--out {out} exists and is not a directory; a release is written into a new directory")
        if (out / "model.safetensors").exists():
            raise ValueError(f"{out} already holds weights; releases are immutable, choose a new name")
        if any(out.iterdir()):
            raise ValueError(f"--out {out} is not empty; a release is written into a new directory")
    else:
        _creatable(out, "--out")
    if workdir.exists() or workdir.is_symlink():
        if not workdir.is_dir():
            raise ValueError(f"--workdir {workdir} exists and is not a directory")
    else:
        _creatable(workdir, "--workdir")


def release_columns(opts: PretrainOptions, init: LoadedWeights | None) -> list[str]:
    """The columns the release will write (its sizes come from the options, or from --init-from)."""
    config = init.config if init else EncoderConfig(**opts.encoder_options())
    return list(replace(config, readout_descriptors=("desc",) if opts.readout != "none" else ()).column_dims())


def preflight(opts: PretrainOptions) -> tuple[LoadedWeights | None, int]:
    """Everything that can be checked before any work; ValueError (or WeightsError) with one line
    otherwise. Returns the weights of --init-from and the number of lines the corpus has."""
    problems = opts.problems()
    if problems:
        raise ValueError(problems[0])
    if not opts.corpus.is_file():
        raise ValueError(f"corpus not found: {opts.corpus}")
    check_destinations(opts)
    init = load_weights(opts.init_from) if opts.init_from else None
    columns = release_columns(opts, init)
    if opts.recommended_column is not None and opts.recommended_column not in columns:
        raise ValueError(f"--recommended-column {opts.recommended_column} is not a column of this release "
                         f"(it writes {', '.join(columns)})")
    lines = read_corpus_lines(opts.corpus)
    used = min(lines, opts.n_molecules) if opts.n_molecules else lines
    if used < min_molecules(opts):
        raise ValueError(too_few_molecules(opts.corpus, used, None, min_molecules(opts)))
    return init, lines


class StopSignals:
    """While installed (a context manager): the first SIGINT or SIGTERM asks the run to stop at the
    next step boundary (`requested()`); a second SIGINT, or any inside `at_once()` (work that a
    checkpoint would not keep), interrupts at once with KeyboardInterrupt. Signal handlers belong to
    the main thread: elsewhere signals keep their handlers."""

    def __init__(self) -> None:
        self.caught: list[int] = []
        self._at_once = False
        self._before: dict = {}

    def requested(self) -> bool:
        return bool(self.caught)

    def _handle(self, signum: int, frame: object) -> None:
        if self._at_once or (self.caught and signum == signal.SIGINT):
            raise KeyboardInterrupt
        self.caught.append(signum)

    @contextlib.contextmanager
    def at_once(self) -> Iterator[None]:
        self._at_once = True
        try:
            yield
        finally:
            self._at_once = False

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._before = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._before.items():
            signal.signal(s, handler)


def start_or_continue(opts: PretrainOptions, resume: bool) -> dict:
    """The run's start record: written when a run starts, checked when it is resumed."""
    path, checkpoint = opts.workdir / "run.json", opts.workdir / "checkpoint.pt"
    if checkpoint.exists() and not resume:
        raise ValueError(f"{opts.workdir} holds a run's checkpoint: add --resume to continue it, or choose another --workdir")
    if checkpoint.exists() and path.exists():
        run = json.loads(path.read_text())
        differ = sorted(k for k, v in opts.run_identity().items() if run["options"].get(k) != v)
        if differ:
            raise ValueError(f"{opts.workdir} holds a run with other options ({', '.join(differ)}): "
                             "resume it with its own command, or choose another --workdir")
        now = git_state()
        if now != run["git"] and now not in run["git"].get("resumed_with", []):
            run["git"] = {**run["git"], "resumed_with": [*run["git"].get("resumed_with", []), now]}
    else:
        (opts.workdir / "readout.pt").unlink(missing_ok=True)  # a fresh run never continues a stale readout fit
        run = {"options": opts.run_identity(), "git": git_state() or {"commit": None, "dirty": None}, "corpus_s": 0.0}
    path.write_text(json.dumps(run, indent=1) + "\n")
    return run


def corpus_cache(opts: PretrainOptions, init: LoadedWeights | None, run: dict, log: Callable[[str], None]) -> Corpus:
    """The featurized corpus, made once per workdir; a cache made by another recipe is refused."""
    cache = opts.workdir / "corpus.npz"
    recipe = {"corpus_sha256": sha256_file(opts.corpus), "n_molecules": opts.n_molecules, "seed": opts.seed,
              "targets": opts.targets,
              "vocab": f"of {init.name} (sha256 {init.sha256})" if init else f"built, size {opts.vocab_size}"}
    if not cache.exists():
        log(f"featurizing {opts.n_molecules or 'all'} molecules of {opts.corpus} -> {cache}")
        t = time.time()
        prepare(opts.corpus, cache, opts.n_molecules, opts.seed, opts.vocab_size, targets=opts.targets,
                vocab=init.fragment_vocab if init else None, recipe=recipe, log=log, min_molecules=min_molecules(opts))
        run["corpus_s"] = time.time() - t
        (opts.workdir / "run.json").write_text(json.dumps(run, indent=1) + "\n")
        log(f"corpus ready in {run['corpus_s']:.0f} s")
    data = load_cache(cache)
    if data.recipe != recipe:
        differ = sorted(k for k in recipe if data.recipe.get(k) != recipe[k])
        raise ValueError(f"{cache} was made for another corpus recipe ({', '.join(differ)}; it holds "
                         f"{data.targets} targets): use another --workdir")
    return data


def encoder_config(opts: PretrainOptions, data: Corpus, init: LoadedWeights | None) -> EncoderConfig:
    """init_from keeps the released encoder's sizes (the size embedding and the SMILES branch may
    be added), not its readout: this run fits its own, or ships none."""
    if init:
        config = replace(init.config, readout_descriptors=(), readout_kind="linear", readout_hidden=0)
        config = replace(config, size_embedding=True) if opts.size_embedding else config
        if opts.smiles_branch and not config.smiles_branch:   # added with its gate at 0 (nn/smiles_branch.py)
            config = replace(config, smiles_branch=True, smiles_vocab=SMILES_VOCAB_SIZE)
        return config
    return EncoderConfig(atom_vocab=dict(ATOM_FEATURES), bond_vocab=dict(BOND_FEATURES), n_fragments=len(data.vocab),
                         **opts.encoder_options())


def fit_readout(opts: PretrainOptions, trainer: Trainer, data: Corpus, resume: bool, stop_after: int | None,
                progress: Progress | None, signals: StopSignals | None = None) -> ReadoutFit | None:
    """The readout fit, checkpointed every epoch; None when stop_after (or a signal) stops it first."""
    config = opts.readout_config()
    signals = signals or StopSignals()
    if signals.requested():
        return None
    with signals.at_once():  # encoding the corpus: nothing a checkpoint would keep
        fit = ReadoutFit(trainer.model, data, config)
    path = opts.workdir / "readout.pt"
    if resume and path.exists():
        fit.load_state_dict(torch.load(path, weights_only=True))
    while fit.epoch < config.epochs:
        if (stop_after is not None and trainer.total_steps + fit.epoch >= stop_after) or signals.requested():
            return None
        record = fit.run_epoch()
        torch.save(fit.state_dict(), path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)
        if progress:
            progress("readout", fit.epoch, config.epochs, record)
    return fit


def pretrain(opts: PretrainOptions, resume: bool = False, stop_after: int | None = None,
             progress: Progress | None = None, log: Callable[[str], None] = print) -> str | None:
    """Make the release opts.out; returns its sha256, or None when stopped after stop_after steps
    (stage steps, then readout epochs, counted together) with everything checkpointed. Raises
    ValueError (or WeightsError) before any work when the run cannot be done, and RunInterrupted
    after checkpointing when SIGINT or SIGTERM stop it."""
    init, corpus_lines = preflight(opts)
    opts.workdir.mkdir(parents=True, exist_ok=True)
    if resume and not (opts.workdir / "checkpoint.pt").exists():
        log(f"nothing to resume in {opts.workdir} (no checkpoint): starting the run from the beginning")
    run = start_or_continue(opts, resume)
    data = corpus_cache(opts, init, run, log)
    if init and data.vocab != init.fragment_vocab:
        raise ValueError(f"{opts.workdir / 'corpus.npz'} has another fragment vocabulary than {opts.init_from}")
    config = encoder_config(opts, data, init)
    if config.smiles_branch:  # the cache keeps SMILES, not tokens: they are made here, every sitting
        attach_smiles_tokens(data, config.token_len)
    trainer = Trainer(data, config, opts.train_config(), opts.workdir, log=log, init=init.model if init else None)
    if resume and trainer.checkpoint_path.exists():
        trainer.load_checkpoint()
        log(f"resumed at stage {trainer.stage} step {trainer.step}")
    fit = None
    with StopSignals() as signals:
        finished = trainer.run(progress, stop_after, signals.requested)
        if finished:
            (opts.workdir / "history.json").write_text(json.dumps(trainer.history))
            if opts.readout != "none":
                fit = fit_readout(opts, trainer, data, resume, stop_after, progress, signals)
    resume_hint = f"the same command with --resume continues from {opts.workdir}"
    if not finished:
        where = f"stage {trainer.stage} step {trainer.step}"
        if signals.requested():
            raise RunInterrupted(f"interrupted after {trainer.global_step} steps ({where}), checkpoint written: {resume_hint}")
        log(f"stopped after {trainer.global_step} steps ({where}); {resume_hint}")
        return None

    model, final_losses, readout, sidecars = trainer.model, trainer.final_losses(), None, {}
    wall = run["corpus_s"] + trainer.elapsed()
    if opts.readout != "none":
        if fit is None:
            if signals.requested():
                raise RunInterrupted(f"interrupted in the readout fit after {trainer.total_steps} stage steps, "
                                     f"every finished epoch written: {resume_hint}")
            log(f"stopped after {stop_after} steps (all stages and readout epochs); {resume_hint}")
            return None
        wall += fit.elapsed()
        head, results = fit.finish()
        model = model.with_readout(head, data.desc_names, kind=opts.readout, hidden=opts.readout_config().hidden)
        readout = readout_section(opts.readout, data.desc_names, results)
        final_losses["readout"] = {k: results[k] for k in ("epochs", "best_epoch", "train_mse", "held_out_mse")}
        sidecars[DESC_TARGETS_FILE] = desc_targets(opts.command(), opts.corpus.name, data)
    init_card = {"name": init.name, "sha256": init.sha256} if init else None
    card = build_card(opts, data, model.config.to_dict(), run, init_card, final_losses, readout, wall, corpus_lines)
    return save_release(opts.out, model.eval(), data.vocab, MAX_ATOMS, card, sidecars, opts.recommended_column)
