"""A release's card and desc_targets.json, written by code at the end of `hsafeat pretrain`.

Nothing in the card is typed by hand: the command is rebuilt from the parsed options, the commit
is read from git when the run starts, the molecules are named by the sha256 of their SMILES, and
save_release adds the sha256 of every file. Scores measured later go to scores.json beside the
card, never into it."""
from __future__ import annotations

import platform
import subprocess
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import rdkit
import safetensors
import torch

import hsafeat
from hsafeat.nn.readout import READOUT_KINDS
from hsafeat.pretrain.corpus import COUNT_RADIUS, FP_BITS, MORGAN_RADII, STANDARDISATION, WITH_COUNTS, Corpus
from hsafeat.pretrain.loop import TrainConfig
from hsafeat.pretrain.options import PretrainOptions
from hsafeat.pretrain.readout_fit import ReadoutConfig

CARD_FORMAT = 2
OBJECTIVES = {
    "stage_a": "masked atomic number (15% of atoms) + masked bond type (15% of bonds), GNN only",
    "stage_a_attributes": "15% of atoms masked with their charge, H count, hybridization, chirality, degree and "
                          "radicals; their atomic number, charge, H count, hybridization and chirality predicted "
                          "+ masked bond type (15% of bonds), GNN only",
    "stage_b": "GNN frozen; ECFP4 1024-bit BCE + standardised RDKit descriptors MSE (from mean of Y) "
               "+ NT-Xent between two 10%-atom-masked views + SAF load balancing + HAP gate balance "
               "(+ H-MoE scaffold-routing contrast when the scaffold router is on)",
    "stage_c": "everything trained (backbone at lr_c * backbone_lr_scale unless frozen); linear heads on the fused "
               "embedding: Morgan bits BCE + log1p radius-2 counts MSE + standardised descriptors MSE "
               "(+ NT-Xent between two masked views when w_contrast > 0) + SAF load balancing + HAP gate balance "
               "(+ scaffold-routing contrast); routing hard at the final temperature",
    "readout": "encoder frozen; the desc_pred readout fitted to the standardised descriptors (targets.descriptors) "
               "by MSE, AdamW with cosine decay, the epoch with the lowest loss on a seeded held-out share kept",
}


def git_state() -> dict | None:
    """The commit of the hsafeat source tree and whether it had uncommitted changes (None when
    hsafeat does not run from a git checkout, e.g. an installed wheel)."""
    root = Path(hsafeat.__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], capture_output=True, text=True, cwd=root, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    if git("rev-parse", "--show-toplevel") != str(root):
        return None
    status = git("status", "--porcelain")
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(status) if status is not None else None}


def objectives(train: TrainConfig, readout: ReadoutConfig) -> dict[str, str]:
    steps = {"stage_a": train.steps_a, "stage_b": train.steps_b, "stage_c": train.steps_c}
    out = {k: OBJECTIVES[k] for k, n in steps.items() if n > 0}
    if "stage_c" in out and train.heads_on == "pooled":
        out["stage_c"] = out["stage_c"].replace("linear heads on the fused embedding",
                                                "linear heads on the pooled column (fused + summed GNN node states)")
    if "stage_a" in out and train.atom_masking == "attributes":
        out["stage_a"] = OBJECTIVES["stage_a_attributes"]
    if readout.kind != "none":
        out["readout"] = OBJECTIVES["readout"]
    return out


def _mordred_version(data: Corpus) -> str:
    """', Mordred <version>' when the targets hold Mordred descriptors ("mordred:" names)."""
    if not any(n.startswith("mordred:") for n in data.desc_names):
        return ""
    from importlib.metadata import version
    return f", Mordred (mordredcommunity) {version('mordredcommunity')}"


def desc_targets(command: str, corpus_file: str, data: Corpus) -> dict:
    """desc_targets.json: how raw RDKit values became the standardised targets, in the readout's
    output order, so desc_pred * std + mean is in RDKit's units."""
    s = data.desc_stats
    return {
        "names": data.desc_names,
        "mean": [float(v) for v in s.mean],
        "std": [float(v) for v in s.std],
        "clip_low": [float(v) for v in s.low],
        "clip_high": [float(v) for v in s.high],
        "transform": STANDARDISATION,
        "provenance": f"written with the release by `{command}`: corpus {corpus_file} (sha256 "
                      f"{data.corpus_sha256}), the {len(data.smiles)} molecules of the cache (sha256 of their SMILES "
                      f"joined by newlines: {data.smiles_sha256()}); RDKit {rdkit.__version__}{_mordred_version(data)}",
    }


def corpus_subset(opts: PretrainOptions, corpus_lines: int | None) -> str:
    """The card's corpus.subset: which lines of the corpus were featurized (corpus.read_smiles)."""
    if not opts.n_molecules:
        return "every line"
    if corpus_lines is not None and opts.n_molecules > corpus_lines:  # read_smiles then keeps them all
        return f"all {corpus_lines} lines (--n-molecules asked for {opts.n_molecules})"
    return f"seeded random subset (seed {opts.seed}) of {opts.n_molecules} lines, in file order"


def build_card(opts: PretrainOptions, data: Corpus, model_config: dict, run: dict, init: dict | None,
               final_losses: dict, readout: dict | None, wall_time_s: float, corpus_lines: int | None = None) -> dict:
    """Everything but name, files and sha256, which save_release adds. run: the run's start
    record (git state, and the commits of later sittings that differ from it). corpus_lines: the
    molecule lines the corpus has (corpus.read_corpus_lines), where known."""
    train, readout_config = opts.train_config(), opts.readout_config()
    subset = corpus_subset(opts, corpus_lines)
    return {
        "card_format": CARD_FORMAT,
        "hsafeat_version": hsafeat.__version__,
        "command": opts.command(),
        "git": run["git"],
        "corpus": {"file": opts.corpus.name, "sha256": data.corpus_sha256, "subset": subset,
                   "n_molecules_used": len(data.smiles), "smiles_sha256": data.smiles_sha256(),
                   "molecules": "the SMILES that parsed, in the order the batch sampler indexes them; "
                                "smiles_sha256 is the sha256 of them joined by newlines",
                   **({"credit": opts.corpus_credit} if opts.corpus_credit else {})},
        "fragment_vocab_size": len(data.vocab),
        "init": init,
        "objectives": objectives(train, readout_config),
        "targets": {"set": data.targets, "morgan_bits_per_radius": FP_BITS, "morgan_radii": list(MORGAN_RADII[data.targets]),
                    **({"count_radius": COUNT_RADIUS} if data.targets in WITH_COUNTS else {}),
                    "descriptors": data.desc_names, "standardisation": "desc_targets.json"},
        "seed": opts.seed,
        "seeds": {"subset": opts.seed, "torch_init": opts.seed, "batch_sampler": opts.seed, "masks": opts.seed,
                  "readout": readout_config.seed,
                  "note": "torch_init seeds torch's global generator before the encoder and heads are built; its "
                          "later state (Gumbel routing noise) is in every checkpoint with the others"},
        "train_config": asdict(train),
        "encoder_config": model_config,
        "readout_config": asdict(readout_config),
        "readout": readout,
        "steps": {"stage_a": train.steps_a, "stage_b": train.steps_b, "stage_c": train.steps_c,
                  "batch_size": train.batch_size, "readout_epochs": readout_config.epochs if readout else 0},
        "final_losses": final_losses,
        "wall_time_s": round(wall_time_s, 1),
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "hardware": f"{platform.machine()} {platform.processor() or ''} torch threads={torch.get_num_threads()}".strip(),
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__,
                     "rdkit": rdkit.__version__, "safetensors": safetensors.__version__},
    }


def readout_section(kind: str, names: list[str], results: dict) -> dict:
    return {"kind": kind, "what": f"desc_pred column: {READOUT_KINDS[kind]}", "descriptors": names,
            "units": "standardised; desc_targets.json gives them back in RDKit's units", "held_out": results}
