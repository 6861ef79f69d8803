"""`hsafeat pretrain`: corpus cache -> two-stage training (resumable) -> a new weights directory."""
from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

import hsafeat
from hsafeat.chem.features import ATOM_FEATURES, BOND_FEATURES
from hsafeat.chem.parse import MAX_ATOMS
from hsafeat.nn.config import EncoderConfig
from hsafeat.pretrain.corpus import DESCRIPTORS, FP_BITS, load_cache, prepare
from hsafeat.pretrain.loop import TrainConfig, Trainer
from hsafeat.weights import save_weights

OBJECTIVES = {
    "stage_a": "masked atomic number (15% of atoms) + masked bond type (15% of bonds), GNN only",
    "stage_b": "GNN frozen; ECFP4 1024-bit BCE + standardised RDKit descriptors MSE (from mean of Y) "
               "+ NT-Xent between two 10%-atom-masked views + SAF load balancing + HAP gate balance "
               "(+ H-MoE scaffold-routing contrast when the scaffold router is on)",
}


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent)
        return out.stdout.strip() or None
    except OSError:
        return None


def pretrain(
    corpus: Path, out: Path, workdir: Path, n_molecules: int | None, encoder: dict, train: TrainConfig,
    vocab_size: int, resume: bool, command: str, progress=None, log=print,
) -> str:
    commit = git_commit()  # the code that starts the run (a resumed run records its own start)
    workdir.mkdir(parents=True, exist_ok=True)
    cache = workdir / "corpus.npz"
    if not cache.exists():
        log(f"featurizing {n_molecules or 'all'} molecules of {corpus} -> {cache}")
        t = time.time()
        prepare(corpus, cache, n_molecules, train.seed, vocab_size)
        log(f"corpus ready in {time.time() - t:.0f} s")
    data = load_cache(cache)
    config = EncoderConfig(atom_vocab=dict(ATOM_FEATURES), bond_vocab=dict(BOND_FEATURES),
                           n_fragments=len(data.vocab), **encoder)
    trainer = Trainer(data, config, train, workdir, log=log)
    if resume and trainer.checkpoint_path.exists():
        trainer.load_checkpoint()
        log(f"resumed at stage {trainer.stage} step {trainer.step}")
    trainer.run(progress)
    (workdir / "history.json").write_text(json.dumps(trainer.history))
    card = {
        "hsafeat_version": hsafeat.__version__,
        "git_commit": commit,
        "command": command,
        "corpus": {"file": Path(corpus).name, "sha256": data.corpus_sha256, "n_molecules_used": len(data.graphs),
                   "subset": f"seeded random subset (seed {train.seed}) of {n_molecules}" if n_molecules else "all",
                   "note": "MOSES: neutral lead-like molecules (C N S O F Cl Br H, 250-350 Da); charges, salts, "
                           "P/I/B/metals and large molecules are out of distribution"},
        "fragment_vocab_size": len(data.vocab),
        "objectives": OBJECTIVES,
        "targets": {"ecfp_bits": FP_BITS, "descriptors": DESCRIPTORS},
        "train_config": asdict(train),
        "encoder_config": config.to_dict(),
        "steps": {"stage_a": train.steps_a, "stage_b": train.steps_b, "batch_size": train.batch_size},
        "seed": train.seed,
        "wall_time_s": round(trainer.elapsed(), 1),
        "final_losses": trainer.final_losses(),
        "hardware": f"{platform.machine()} {platform.processor() or ''} torch threads={torch.get_num_threads()}".strip(),
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__},
    }
    return save_weights(out, trainer.model, data.vocab, MAX_ATOMS, card)
