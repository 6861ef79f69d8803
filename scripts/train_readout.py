"""Fit descriptor readouts on a frozen, released encoder and compare the kinds; optionally write
the pair under a new name.

A release is made by one command, which fits the readout as its last step and writes the card:

    hsafeat pretrain --init-from hsanet-moses-v2.1 --corpus pretrain-work/broad.csv.gz --targets v2 \
        --steps-a 0 --steps-b 0 --steps-c 0 --workdir pretrain-work/readout --out weights/NEW

This script is for studying readouts on an existing corpus cache (--cache; e.g. the corpus.npz an
`hsafeat pretrain` run wrote): it fits both kinds on the same split (hsafeat.pretrain.readout_fit:
"linear" on fused, "pooled_mlp" on fused and the summed node states) and prints each one's held-out
loss and R², what the linear kind can reach beside the pooled one. It made hsanet-moses-v2.2's
readout (that card's readout.command; weights/hsanet-moses-v2.2/errata.json records the settings it
used). With --out it writes v2's encoder with the pooled readout, card and desc_targets.json
written by code; prefer `hsafeat pretrain` for releases."""
from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path

import torch

from hsafeat.pretrain.card import desc_targets, git_state, readout_section
from hsafeat.pretrain.corpus import load_cache, prepare
from hsafeat.pretrain.readout_fit import ReadoutConfig, ReadoutFit
from hsafeat.weights import DESC_TARGETS_FILE, load_weights, save_release


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help="released weights (name or directory) whose encoder is kept")
    ap.add_argument("--cache", required=True, type=Path, help="pretraining corpus cache (corpus.npz, v2 targets)")
    ap.add_argument("--corpus", type=Path, help="CSV(.gz) of SMILES to build the cache from when it does not exist")
    ap.add_argument("--out", type=Path, help="write the encoder with the pooled readout here (a new release)")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, help="use only the cache's first LIMIT molecules (quick trials)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    command = shlex.join(["python", "scripts/train_readout.py", *sys.argv[1:]])
    git = git_state()

    source = load_weights(a.weights)
    if not a.cache.exists():
        if a.corpus is None:
            sys.exit(f"{a.cache} does not exist: give --corpus to build it")
        a.cache.parent.mkdir(parents=True, exist_ok=True)
        prepare(a.corpus, a.cache, None, a.seed, len(source.fragment_vocab), targets="v2", vocab=source.fragment_vocab)
    data = load_cache(a.cache)
    if data.vocab != source.fragment_vocab:
        sys.exit(f"{a.cache} was built with another fragment vocabulary than {source.name}")
    if data.targets != "v2":
        sys.exit(f"{a.cache} holds {data.targets} targets; the readout needs v2 (all RDKit descriptors)")
    if a.limit:
        data = dataclasses.replace(data, graphs=data.graphs[:a.limit], desc=data.desc[:a.limit], smiles=data.smiles[:a.limit])

    heads, results, configs = {}, {}, {}
    for kind in ("linear", "pooled_mlp"):
        configs[kind] = ReadoutConfig(kind=kind, hidden=a.hidden if kind == "pooled_mlp" else 0, epochs=a.epochs,
                                      lr=a.lr, seed=a.seed)
        fit = ReadoutFit(source.model, data, configs[kind])
        while fit.epoch < a.epochs:
            fit.run_epoch()
        heads[kind], results[kind] = fit.finish()
        results[kind]["fit_s"] = round(fit.elapsed(), 1)
        print(kind, json.dumps(results[kind]), flush=True)
    if a.out is None:
        return

    model = source.model.with_readout(heads["pooled_mlp"], data.desc_names, kind="pooled_mlp", hidden=a.hidden)
    card = {k: v for k, v in source.card.items() if k not in ("name", "sha256", "files", "readout", "benchmark", "card_format")}
    card["encoder_config"] = model.config.to_dict()
    card["readout"] = {
        **readout_section("pooled_mlp", data.desc_names, results["pooled_mlp"]),
        "source_weights": {"name": source.name, "sha256": source.sha256},
        "corpus_cache": {"path": str(a.cache), "corpus_sha256": data.corpus_sha256, "n_molecules": len(data.smiles),
                         "smiles_sha256": data.smiles_sha256()},
        "config": dataclasses.asdict(configs["pooled_mlp"]), "threads": a.threads, "git": git,
        "command": command, "linear_beside_it": results["linear"],
    }
    digest = save_release(a.out, model, source.fragment_vocab, source.max_atoms, card,
                          {DESC_TARGETS_FILE: desc_targets(command, a.cache.name, data)})
    print(json.dumps({"out": str(a.out), "sha256": digest, "descriptors": len(data.desc_names)}))


if __name__ == "__main__":
    main()
