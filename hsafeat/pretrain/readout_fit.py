"""The last step of a release: fit the descriptor readout (the `desc_pred` column) on the frozen
encoder, one epoch at a time, resumable like the stages before it.

The readout reads the encoder's features (nn/readout.py: `fused`, plus the summed GNN node states
for "pooled_mlp") and predicts the corpus's standardised descriptors. A seeded share of the
molecules is held out; the state with the lowest held-out loss is kept (early stopping on the
corpus, never on benchmark scores). The features are standardised for the fit and the
standardisation is folded into the first layers afterwards, so the shipped readout reads raw
features."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from hsafeat.data.batch import collate
from hsafeat.nn.encoder import HSAEncoder
from hsafeat.nn.readout import PooledMLPReadout
from hsafeat.pretrain.corpus import Corpus
from hsafeat.pretrain.rng_state import generator_state, global_rng_state, set_generator_state, set_global_rng_state

REPORTED = ("MolWt", "HeavyAtomCount", "MolLogP", "TPSA", "NumHDonors", "RingCount", "NumRotatableBonds", "qed")


@dataclass(frozen=True)
class ReadoutConfig:
    kind: str = "pooled_mlp"     # choices.ReadoutKind; "none" ships no readout
    hidden: int = 512            # pooled_mlp's hidden width
    epochs: int = 60
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 512
    held_out: float = 0.1        # share of the molecules held out for early stopping
    seed: int = 0                # the split, the head's initialisation and the batch order


@torch.inference_mode()
def encoder_features(model: HSAEncoder, graphs: list, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """fused (n x 2 d_out) and level sums (n x n_levels d_model) of every graph, in input order,
    as the released encoder computes them (eval mode: hard routing, no Gumbel noise): the two
    parts of its `pooled` column."""
    was_training = model.training
    model.eval()
    order = np.argsort([g.n_atoms for g in graphs], kind="stable")  # similar sizes pad less
    pooled = [model(collate([graphs[i] for i in order[start:start + batch_size]])).pooled
              for start in range(0, len(graphs), batch_size)]
    model.train(was_training)
    out = torch.cat(pooled)[torch.from_numpy(np.argsort(order))]
    d_fused = 2 * model.config.d_out
    return out[:, :d_fused], out[:, d_fused:]


def r2(pred: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Per descriptor; NaN where the held-out molecules hardly vary (rare fragment counts)."""
    resid = ((pred - y) ** 2).sum(0).numpy()
    total = ((y - y.mean(0)) ** 2).sum(0).numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 1e-3 * len(y), 1 - resid / total, np.nan)


class ReadoutFit:
    """AdamW on MSE with cosine decay over config.epochs; state_dict() after any epoch resumes it."""

    def __init__(self, model: HSAEncoder, corpus: Corpus, config: ReadoutConfig) -> None:
        c = self.config = config
        self.names = corpus.desc_names
        fused, sums = encoder_features(model, corpus.graphs)
        x = fused if c.kind == "linear" else torch.cat([fused, sums], dim=1)
        self.y = torch.from_numpy(corpus.desc)
        n = len(self.y)
        perm = np.random.default_rng(c.seed).permutation(n)
        n_held = min(n - 1, max(1, round(n * c.held_out)))
        self.held, self.train_idx = perm[:n_held], perm[n_held:]
        self.mean, self.std = x[self.train_idx].mean(0), x[self.train_idx].std(0).clamp(min=1e-6)
        self.x = x
        self.xs = (x - self.mean) / self.std
        torch.manual_seed(c.seed)
        self.head: nn.Module = (nn.Linear(x.shape[1], self.y.shape[1]) if c.kind == "linear"
                                else PooledMLPReadout(x.shape[1], c.hidden, self.y.shape[1]))
        self.steps_per_epoch = int(np.ceil(len(self.train_idx) / c.batch_size))
        self.opt = torch.optim.AdamW(self.head.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, c.epochs * self.steps_per_epoch)
        self.rng = np.random.default_rng(c.seed)
        self.epoch, self.train_loss = 0, float("nan")
        self.best, self.best_epoch = float("inf"), 0
        self.best_state = {k: v.clone() for k, v in self.head.state_dict().items()}
        self.elapsed_before, self.started = 0.0, time.time()

    def run_epoch(self) -> dict:
        self.head.train()
        losses = []
        for idx in np.array_split(self.rng.permutation(self.train_idx), self.steps_per_epoch):
            loss = nn.functional.mse_loss(self.head(self.xs[idx]), self.y[idx])
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            self.sched.step()
            losses.append(float(loss.detach()) * len(idx))
        self.head.eval()
        with torch.no_grad():
            held_loss = float(nn.functional.mse_loss(self.head(self.xs[self.held]), self.y[self.held]))
        self.epoch += 1
        self.train_loss = sum(losses) / len(self.train_idx)
        if held_loss < self.best:
            self.best, self.best_epoch = held_loss, self.epoch
            self.best_state = {k: v.clone() for k, v in self.head.state_dict().items()}
        return {"stage": "readout", "step": self.epoch, "train_mse": round(self.train_loss, 5),
                "held_out_mse": round(held_loss, 5)}

    def elapsed(self) -> float:
        return self.elapsed_before + time.time() - self.started

    def state_dict(self) -> dict:
        return {"head": self.head.state_dict(), "opt": self.opt.state_dict(), "sched": self.sched.state_dict(),
                "rng": generator_state(self.rng), "global_rng": global_rng_state(), "epoch": self.epoch,
                "train_loss": self.train_loss, "best": self.best, "best_epoch": self.best_epoch,
                "best_state": self.best_state, "elapsed": self.elapsed()}

    def load_state_dict(self, state: dict) -> None:
        self.head.load_state_dict(state["head"])
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        set_generator_state(self.rng, state["rng"])
        set_global_rng_state(state["global_rng"])
        self.epoch, self.train_loss = state["epoch"], state["train_loss"]
        self.best, self.best_epoch, self.best_state = state["best"], state["best_epoch"], state["best_state"]
        self.elapsed_before, self.started = state["elapsed"], time.time()

    def finish(self) -> tuple[nn.Module, dict]:
        """The best head, reading raw features, and its held-out scores."""
        head = self.head
        head.load_state_dict(self.best_state)
        first = [head.linear, head.mlp[0]] if isinstance(head, PooledMLPReadout) else [head]  # the layers that read x
        with torch.no_grad():
            for layer in first:  # read raw x instead of (x - mean) / std
                assert isinstance(layer, nn.Linear)
                layer.bias.sub_(layer.weight @ (self.mean / self.std))
                layer.weight.div_(self.std)
            scores = r2(head(self.x[self.held]), self.y[self.held])
        named = dict(zip(self.names, scores.tolist()))
        defined = scores[np.isfinite(scores)]
        results = {
            "epochs": self.epoch, "best_epoch": self.best_epoch, "train_mse": round(self.train_loss, 5),
            "held_out_mse": round(self.best, 5), "n_train": len(self.train_idx), "n_held_out": len(self.held),
            "r2_mean": round(float(defined.mean()), 4) if len(defined) else None,
            "r2_median": round(float(np.median(defined)), 4) if len(defined) else None,
            "r2_undefined": int(np.isnan(scores).sum()),
            "r2": {k: round(named[k], 4) for k in REPORTED if k in named and np.isfinite(named[k])},
        }
        return head, results
