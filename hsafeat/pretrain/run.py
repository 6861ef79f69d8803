"""`hsafeat pretrain`: corpus cache -> staged training (resumable) -> a new weights directory."""
from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

import hsafeat
from hsafeat.chem.features import ATOM_FEATURES, BOND_FEATURES
from hsafeat.chem.parse import MAX_ATOMS
from hsafeat.nn.config import EncoderConfig
from hsafeat.pretrain.corpus import COUNT_RADIUS, FP_BITS, MORGAN_RADII, load_cache, prepare
from hsafeat.pretrain.loop import TrainConfig, Trainer
from hsafeat.weights import load_weights, save_weights

OBJECTIVES = {
    "stage_a": "masked atomic number (15% of atoms) + masked bond type (15% of bonds), GNN only",
    "stage_b": "GNN frozen; ECFP4 1024-bit BCE + standardised RDKit descriptors MSE (from mean of Y) "
               "+ NT-Xent between two 10%-atom-masked views + SAF load balancing + HAP gate balance "
               "(+ H-MoE scaffold-routing contrast when the scaffold router is on)",
    "stage_c": "everything trained (backbone at lr_c * backbone_lr_scale unless frozen); linear heads on the fused "
               "embedding: Morgan bits BCE + log1p radius-2 counts MSE + standardised descriptors MSE "
               "(+ NT-Xent between two masked views when w_contrast > 0) + SAF load balancing + HAP gate balance "
               "(+ scaffold-routing contrast); routing hard at the final temperature",
}


def stages_run(train: TrainConfig, init_from: str | None) -> dict[str, str]:
    steps = {"stage_a": train.steps_a, "stage_b": train.steps_b, "stage_c": train.steps_c}
    out = {k: OBJECTIVES[k] for k, n in steps.items() if n > 0}
    if init_from:
        out["init"] = f"started from the released weights {init_from}"
    return out


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent)
        return out.stdout.strip() or None
    except OSError:
        return None


def pretrain(
    corpus: Path, out: Path, workdir: Path, n_molecules: int | None, encoder: dict, train: TrainConfig,
    vocab_size: int, resume: bool, command: str, progress=None, log=print,
    targets: str = "v1", init_from: str | None = None,
) -> str:
    """init_from: released weights to continue from; their encoder config and fragment vocabulary
    are kept (`encoder` and `vocab_size` are then ignored, except that encoder["size_embedding"]
    can add the size embedding, which starts at zero)."""
    commit = git_commit()  # the code that starts the run (a resumed run records its own start)
    workdir.mkdir(parents=True, exist_ok=True)
    init = load_weights(init_from) if init_from else None
    cache = workdir / "corpus.npz"
    if not cache.exists():
        log(f"featurizing {n_molecules or 'all'} molecules of {corpus} -> {cache}")
        t = time.time()
        prepare(corpus, cache, n_molecules, train.seed, vocab_size, targets=targets,
                vocab=init.fragment_vocab if init else None)
        log(f"corpus ready in {time.time() - t:.0f} s")
    data = load_cache(cache)
    if data.targets != targets:
        raise ValueError(f"{cache} holds {data.targets} targets, not {targets}: use another --workdir")
    if init:
        if data.vocab != init.fragment_vocab:
            raise ValueError(f"{cache} has another fragment vocabulary than {init_from}: use another --workdir")
        config = replace(init.config, size_embedding=True) if encoder.get("size_embedding") else init.config
    else:
        config = EncoderConfig(atom_vocab=dict(ATOM_FEATURES), bond_vocab=dict(BOND_FEATURES),
                               n_fragments=len(data.vocab), **encoder)
    trainer = Trainer(data, config, train, workdir, log=log, init=init.model if init else None)
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
        "objectives": stages_run(train, init_from and f"{init.name} (sha256 {init.sha256})" if init else None),
        "targets": {"set": data.targets, "morgan_bits_per_radius": FP_BITS, "morgan_radii": list(MORGAN_RADII[data.targets]),
                    **({"count_radius": COUNT_RADIUS} if data.targets == "v2" else {}),
                    "descriptors": data.desc_names},
        "train_config": asdict(train),
        "encoder_config": config.to_dict(),
        "steps": {"stage_a": train.steps_a, "stage_b": train.steps_b, "stage_c": train.steps_c,
                  "batch_size": train.batch_size},
        "seed": train.seed,
        "wall_time_s": round(trainer.elapsed(), 1),
        "final_losses": trainer.final_losses(),
        "hardware": f"{platform.machine()} {platform.processor() or ''} torch threads={torch.get_num_threads()}".strip(),
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__},
    }
    model = trainer.model
    if train.steps_c > 0:  # ship stage C's descriptor head as the readout (the desc_pred column)
        model = model.with_readout(trainer.heads_c.desc, data.desc_names)
        card["encoder_config"] = model.config.to_dict()
    return save_weights(out, model, data.vocab, MAX_ATOMS, card)
