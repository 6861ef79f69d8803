"""Fit a descriptor readout on a frozen encoder and release the pair under a new name.

    python scripts/make_broad_corpus.py ../shared/data/pretrain/moses_train.csv.gz \
        pretrain-work/broad.csv.gz --n 60000 --seed 3
    python scripts/train_readout.py --weights hsanet-moses-v2.1 --corpus pretrain-work/broad.csv.gz \
        --cache pretrain-work/readout/corpus.npz --out weights/hsanet-moses-v2.2

The encoder's tensors are copied unchanged: only `desc_pred` changes. The cache is a pretraining
corpus cache with v2 targets: made from --corpus if it does not exist yet (~12 min for 54 k
molecules on 2 cores), or one `hsafeat pretrain --init-from` wrote as <workdir>/corpus.npz (it
must use these weights' fragment vocabulary). A seeded 10 % of its molecules is
held out; the readout is chosen by its held-out loss (early stopping), never by benchmark
scores, and the card records its held-out R² beside a linear readout on `fused` fitted the same
way (what the linear kind can reach on this corpus)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hsafeat.data.batch import collate
from hsafeat.nn.readout import PooledMLPReadout, level_sums
from hsafeat.pretrain.corpus import load_cache, prepare
from hsafeat.weights import load_weights, save_weights

REPORTED = ("MolWt", "HeavyAtomCount", "MolLogP", "TPSA", "NumHDonors", "RingCount", "NumRotatableBonds", "qed")


@torch.inference_mode()
def encoder_features(model, graphs, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """fused (n x 2 d_out) and level sums (n x n_levels d_model) of every graph, in input order."""
    order = np.argsort([g.n_atoms for g in graphs], kind="stable")  # similar sizes pad less
    fused, sums = [], []
    for start in range(0, len(graphs), batch_size):
        batch = collate([graphs[i] for i in order[start:start + batch_size]])
        levels = model.backbone(batch.x, batch.edge_index, batch.edge_attr)
        fused.append(model(batch, levels=levels).fused)
        sums.append(level_sums(levels, batch.batch, batch.n_graphs))
    inverse = torch.from_numpy(np.argsort(order))
    return torch.cat(fused)[inverse], torch.cat(sums)[inverse]


def fold_standardisation(head: nn.Module, first_layers: list[nn.Linear], mean: torch.Tensor, std: torch.Tensor) -> None:
    """Rewrite the layers that read x so they read raw x instead of (x - mean) / std."""
    with torch.no_grad():
        for layer in first_layers:
            layer.bias -= layer.weight @ (mean / std)
            layer.weight /= std


def fit(head: nn.Module, x: torch.Tensor, y: torch.Tensor, train: np.ndarray, held: np.ndarray,
        epochs: int, lr: float, seed: int) -> tuple[float, int]:
    """AdamW on MSE with cosine decay; keeps the state with the lowest held-out loss."""
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = int(np.ceil(len(train) / 512))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * steps_per_epoch)
    rng = np.random.default_rng(seed)
    best, best_epoch, best_state = float("inf"), -1, None
    for epoch in range(epochs):
        head.train()
        for idx in np.array_split(rng.permutation(train), steps_per_epoch):
            loss = nn.functional.mse_loss(head(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        head.eval()
        with torch.no_grad():
            held_loss = float(nn.functional.mse_loss(head(x[held]), y[held]))
        if held_loss < best:
            best, best_epoch = held_loss, epoch
            best_state = {k: v.clone() for k, v in head.state_dict().items()}
    head.load_state_dict(best_state)
    return best, best_epoch


def r2(pred: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Per descriptor; NaN where the held-out molecules hardly vary (rare fragment counts)."""
    resid = ((pred - y) ** 2).sum(0).numpy()
    total = ((y - y.mean(0)) ** 2).sum(0).numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 1e-3 * len(y), 1 - resid / total, np.nan)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help="released weights (name or directory) whose encoder is kept")
    ap.add_argument("--cache", required=True, type=Path, help="pretraining corpus cache (corpus.npz, v2 targets)")
    ap.add_argument("--corpus", type=Path, help="CSV(.gz) of SMILES to build the cache from when it does not exist")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, help="use only the cache's first LIMIT molecules (quick trials)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

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
    graphs, desc = data.graphs[: a.limit], data.desc[: a.limit]
    t0 = time.perf_counter()
    fused, sums = encoder_features(source.model, graphs)
    t_features = time.perf_counter() - t0
    y = torch.from_numpy(desc)
    perm = np.random.default_rng(a.seed).permutation(len(y))
    held, train = perm[: len(y) // 10], perm[len(y) // 10:]

    results = {}
    heads = {}
    for kind, x in (("linear", fused), ("pooled_mlp", torch.cat([fused, sums], dim=1))):
        mean, std = x[train].mean(0), x[train].std(0).clamp(min=1e-6)
        xs = (x - mean) / std
        head = (nn.Linear(x.shape[1], y.shape[1]) if kind == "linear"
                else PooledMLPReadout(x.shape[1], a.hidden, y.shape[1]))
        t0 = time.perf_counter()
        loss, epoch = fit(head, xs, y, train, held, a.epochs, a.lr, a.seed)
        first = [head] if kind == "linear" else [head.linear, head.mlp[0]]
        fold_standardisation(head, first, mean, std)
        with torch.no_grad():
            scores = r2(head(x[held]), y[held])
        named = dict(zip(data.desc_names, scores.tolist()))
        results[kind] = {
            "held_out_mse": round(loss, 5), "best_epoch": epoch + 1, "fit_s": round(time.perf_counter() - t0, 1),
            "r2_mean": round(float(np.nanmean(scores)), 4), "r2_median": round(float(np.nanmedian(scores)), 4),
            "r2_below_0.8": int((scores < 0.8).sum()), "r2_undefined": int(np.isnan(scores).sum()),
            "r2": {k: round(named[k], 4) for k in REPORTED if k in named},
        }
        heads[kind] = head
        print(kind, json.dumps(results[kind]), flush=True)

    model = source.model.with_readout(heads["pooled_mlp"], data.desc_names, kind="pooled_mlp", hidden=a.hidden)
    card = {k: v for k, v in source.card.items() if k not in ("name", "sha256", "readout", "benchmark")}
    card["encoder_config"] = model.config.to_dict()
    card["targets"] = {**card.get("targets", {}), "descriptors": data.desc_names}
    card["readout"] = {
        "what": "desc_pred column: the pooled_mlp readout (hsafeat/nn/readout.py) fitted on this frozen encoder; "
                "predicts the standardised RDKit descriptors named in targets.descriptors",
        "source_weights": {"name": source.name, "sha256": source.sha256},
        "corpus_cache": {"path": str(a.cache), "corpus_sha256": data.corpus_sha256, "n_molecules": len(y),
                         "held_out": len(held)},
        "command": " ".join(["python scripts/train_readout.py", *sys.argv[1:]]),
        "encoder_features_s": round(t_features, 1),
        "held_out": results,
    }
    digest = save_weights(a.out, model, source.fragment_vocab, source.max_atoms, card)
    print(json.dumps({"out": str(a.out), "sha256": digest, "descriptors": len(data.desc_names)}))


if __name__ == "__main__":
    main()
