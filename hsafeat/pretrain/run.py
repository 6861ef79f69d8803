"""`hsafeat pretrain`: one command makes a whole release.

corpus cache -> stages A, B, C (loop.py) -> the descriptor readout fit (readout_fit.py) -> the
release directory (tensors, config.json, desc_targets.json, then card.json, written by code).
Every sitting of the run is resumable: <workdir>/run.json records the options and the commit the
run started with, checkpoint.pt the stages, readout.pt the readout fit. A resumed run must have
the same options; its release equals an uninterrupted run's, tensor for tensor."""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace

import torch

from hsafeat.chem.features import ATOM_FEATURES, BOND_FEATURES
from hsafeat.chem.parse import MAX_ATOMS
from hsafeat.chem.smiles_tokens import VOCAB_SIZE as SMILES_VOCAB_SIZE
from hsafeat.nn.config import EncoderConfig
from hsafeat.pretrain.card import build_card, desc_targets, git_state, readout_section
from hsafeat.pretrain.corpus import Corpus, attach_smiles_tokens, load_cache, prepare
from hsafeat.pretrain.loop import Trainer
from hsafeat.pretrain.options import PretrainOptions
from hsafeat.pretrain.readout_fit import ReadoutFit
from hsafeat.weights import DESC_TARGETS_FILE, LoadedWeights, load_weights, save_release, sha256_file

Progress = Callable[[str, int, int, dict], None]


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
                vocab=init.fragment_vocab if init else None, recipe=recipe, log=log)
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
                progress: Progress | None) -> ReadoutFit | None:
    """The readout fit, checkpointed every epoch; None when stop_after stops it first."""
    config = opts.readout_config()
    fit = ReadoutFit(trainer.model, data, config)
    path = opts.workdir / "readout.pt"
    if resume and path.exists():
        fit.load_state_dict(torch.load(path, weights_only=True))
    while fit.epoch < config.epochs:
        if stop_after is not None and trainer.total_steps + fit.epoch >= stop_after:
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
    (stage steps, then readout epochs, counted together) with everything checkpointed."""
    opts.workdir.mkdir(parents=True, exist_ok=True)
    run = start_or_continue(opts, resume)
    init = load_weights(opts.init_from) if opts.init_from else None
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
    if not trainer.run(progress, stop_after):
        log(f"stopped after {trainer.global_step} steps (stage {trainer.stage} step {trainer.step}); continue with --resume")
        return None
    (opts.workdir / "history.json").write_text(json.dumps(trainer.history))

    model, final_losses, readout, sidecars = trainer.model, trainer.final_losses(), None, {}
    wall = run["corpus_s"] + trainer.elapsed()
    if opts.readout != "none":
        fit = fit_readout(opts, trainer, data, resume, stop_after, progress)
        if fit is None:
            log(f"stopped after {stop_after} steps (all stages and readout epochs); continue with --resume")
            return None
        wall += fit.elapsed()
        head, results = fit.finish()
        model = model.with_readout(head, data.desc_names, kind=opts.readout, hidden=opts.readout_config().hidden)
        readout = readout_section(opts.readout, data.desc_names, results)
        final_losses["readout"] = {k: results[k] for k in ("epochs", "best_epoch", "train_mse", "held_out_mse")}
        sidecars[DESC_TARGETS_FILE] = desc_targets(opts.command(), opts.corpus.name, data)
    init_card = {"name": init.name, "sha256": init.sha256} if init else None
    card = build_card(opts, data, model.config.to_dict(), run, init_card, final_losses, readout, wall)
    return save_release(opts.out, model.eval(), data.vocab, MAX_ATOMS, card, sidecars, opts.recommended_column)
