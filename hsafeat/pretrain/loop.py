"""The pretraining loop (resumable) that produces a weights directory.

Stage A trains the GINE backbone on masked atom and bond attributes. Stage B freezes it and trains
HAP, the motif stream and SAF on ECFP bits, standardised descriptors, a contrastive term between
two masked views, the SAF load-balancing loss and (with the scaffold router) H-MoE's
scaffold-routing contrast. The Gumbel temperature anneals 1.0 -> 0.3 with soft routing for the
first 5 % of stage B. Stage C (v2 recipe) trains everything end to end, the backbone at a lower
learning rate, with linear heads on the fused embedding: many descriptors, multi-radius Morgan
bits and counts, the contrastive term (optional) and the same balance and routing losses; routing
stays hard at the final temperature, so it follows stage B or starts from released weights.

A checkpoint holds everything the next step depends on (weights, optimizer, stage and step, the
batches drawn so far and every random generator's state: rng_state.py), so a run stopped after
any step and resumed gives the tensors an uninterrupted run gives."""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from hsafeat.data.batch import GraphBatch, collate
from hsafeat.nn.config import EncoderConfig
from hsafeat.nn.encoder import HSAEncoder
from hsafeat.nn.losses import gate_balance_loss, load_balancing_loss, nt_xent, scaffold_routing_contrastive
from hsafeat.pretrain.corpus import Corpus
from hsafeat.pretrain.objectives import StageAHeads, StageBHeads, StageCHeads, mask_atoms, mask_bonds, mask_tokens
from hsafeat.pretrain.rng_state import generator_state, global_rng_state, set_generator_state, set_global_rng_state

STAGES = ("a", "b", "c")
SIZE_POOL = 32   # batches drawn together and sorted by size ("size" batching)


@dataclass(frozen=True)
class TrainConfig:
    steps_a: int = 2000
    steps_b: int = 2000
    steps_c: int = 0
    lr_c: float = 3e-4
    backbone_lr_scale: float = 0.3    # stage C: the backbone moves slower than the layers above it
    freeze_backbone_c: bool = False   # ablation: stage C with the GNN frozen
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 100
    mask_rate: float = 0.15
    atom_masking: str = "element"     # stage A: "element", or "attributes" (objectives.mask_atoms)
    heads_on: str = "fused"           # stage C: the column its linear heads read ("fused" or "pooled")
    batching: str = "random"          # "random" molecules per batch, or "size": batches of similar size (_sample)
    view_mask_rate: float = 0.10
    w_contrast: float = 0.5
    w_balance: float = 0.01
    w_gate_balance: float = 0.1
    w_scaffold: float = 0.1
    seed: int = 0
    checkpoint_every: int = 200
    loss_weights: dict[str, float] = field(default_factory=lambda: {"fp": 1.0, "desc": 1.0})


def lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def tau_at(step: int, total: int) -> tuple[float, bool]:
    """Gumbel temperature (cosine 1.0 -> 0.3) and whether routing is hard yet."""
    progress = step / max(1, total)
    return 0.3 + 0.7 * 0.5 * (1 + math.cos(math.pi * progress)), progress >= 0.05


class Trainer:
    def __init__(self, corpus: Corpus, config: EncoderConfig, train: TrainConfig, workdir: Path,
                 log: Callable[[str], None] = print, init: HSAEncoder | None = None) -> None:
        """init: start from these (released) weights instead of a random encoder."""
        self.corpus, self.train, self.workdir, self.log = corpus, train, Path(workdir), log
        torch.manual_seed(train.seed)
        self.model = HSAEncoder(config)
        if init is not None:
            self.model.load_extending(init.state_dict())   # the size embedding may be new
        self.heads_a = StageAHeads(config.d_model, attributes=train.atom_masking == "attributes")
        self.heads_b = StageBHeads(config.d_out, corpus.fp.shape[1], corpus.desc.shape[1])
        d_heads_c = config.pooled_dim if train.heads_on == "pooled" else 2 * config.d_out
        self.heads_c = StageCHeads(d_heads_c, corpus.fp.shape[1], corpus.counts.shape[1], corpus.desc.shape[1])
        self.rng = np.random.default_rng(train.seed)
        self._n_atoms = np.asarray([g.n_atoms for g in corpus.graphs])
        self.gen = torch.Generator().manual_seed(train.seed)
        self.stage, self.step = "a", 0
        self.batches_drawn = 0   # the position in the data order (the sampler draws one batch per step)
        self.history: list[dict] = []
        self.started = time.time()
        self.elapsed_before = 0.0
        self.opt = self._optimizer()

    def _optimizer(self) -> torch.optim.Optimizer:
        """Param groups carry their own base learning rate ("base_lr"); run() applies the schedule."""
        t = self.train
        above = [p for n, p in self.model.named_parameters() if not n.startswith("backbone.")]
        if self.stage == "a":
            groups = [{"params": list(self.model.backbone.parameters()) + list(self.heads_a.parameters()), "base_lr": t.lr}]
        elif self.stage == "b":
            groups = [{"params": above + list(self.heads_b.parameters()), "base_lr": t.lr}]
        else:
            groups = [{"params": above + list(self.heads_c.parameters()), "base_lr": t.lr_c}]
            if not t.freeze_backbone_c:
                groups.append({"params": list(self.model.backbone.parameters()), "base_lr": t.lr_c * t.backbone_lr_scale})
        return torch.optim.AdamW(groups, lr=float(groups[0]["base_lr"]), weight_decay=t.weight_decay)  # type: ignore[arg-type]

    def steps_in(self, stage: str) -> int:
        return {"a": self.train.steps_a, "b": self.train.steps_b, "c": self.train.steps_c}[stage]

    @property
    def total_steps(self) -> int:
        return sum(self.steps_in(s) for s in STAGES)

    @property
    def global_step(self) -> int:
        """Steps done in all stages so far."""
        return sum(self.steps_in(s) for s in STAGES[:STAGES.index(self.stage)]) + self.step

    # --- checkpoints (tensors and JSON only; torch.load with weights_only=True) ---
    @property
    def checkpoint_path(self) -> Path:
        return self.workdir / "checkpoint.pt"

    def save_checkpoint(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        state = {
            "model": self.model.state_dict(), "heads_a": self.heads_a.state_dict(), "heads_b": self.heads_b.state_dict(),
            "heads_c": self.heads_c.state_dict(), "opt": self.opt.state_dict(), "stage": self.stage, "step": self.step,
            "batches_drawn": self.batches_drawn, "rng": generator_state(self.rng), "gen": self.gen.get_state(),
            "global_rng": global_rng_state(), "history": json.dumps(self.history), "elapsed": self.elapsed(),
        }
        tmp = self.checkpoint_path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self.checkpoint_path)

    def load_checkpoint(self) -> None:
        state = torch.load(self.checkpoint_path, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.heads_a.load_state_dict(state["heads_a"])
        self.heads_b.load_state_dict(state["heads_b"])
        if "heads_c" in state:
            self.heads_c.load_state_dict(state["heads_c"])
        self.stage, self.step = state["stage"], state["step"]
        self.opt = self._optimizer()
        self.opt.load_state_dict(state["opt"])
        self.batches_drawn = state["batches_drawn"]
        set_generator_state(self.rng, state["rng"])
        self.gen.set_state(state["gen"])
        set_global_rng_state(state["global_rng"])
        self.history = json.loads(state["history"])
        self.elapsed_before = state["elapsed"]
        self.started = time.time()

    def elapsed(self) -> float:
        return self.elapsed_before + time.time() - self.started

    # --- steps ---
    def _sample(self) -> tuple:
        if self.train.batching == "size":
            idx = self._size_batch(self.batches_drawn)
        else:
            idx = self.rng.integers(0, len(self.corpus.graphs), self.train.batch_size)
        self.batches_drawn += 1
        batch = collate([self.corpus.graphs[i] for i in idx])
        return idx, batch

    def _size_batch(self, number: int) -> np.ndarray:
        """Batch `number` of the "size" batching: every SIZE_POOL batches draw SIZE_POOL x
        batch_size molecules at random, sort them by atom count and cut them into batches taken in
        a random order. The padded sequence of the Graph-Mamba scan and the attention is as long as
        a batch's largest molecule, so mixed sizes make every molecule pay for the largest (broad
        corpus: ~10x the cost per step of MOSES). Each pool is a function of (seed, pool number)
        alone, so a resumed run draws the batches an uninterrupted one draws."""
        pool_number, position = divmod(number, SIZE_POOL)
        if getattr(self, "_pool", (None,))[0] != pool_number:
            rng = np.random.default_rng([self.train.seed, pool_number])
            drawn = rng.integers(0, len(self.corpus.graphs), SIZE_POOL * self.train.batch_size)
            by_size = drawn[np.argsort(self._n_atoms[drawn], kind="stable")]
            batches = by_size.reshape(SIZE_POOL, self.train.batch_size)[rng.permutation(SIZE_POOL)]
            self._pool = (pool_number, batches)
        return self._pool[1][position]

    def step_a(self) -> dict[str, torch.Tensor]:
        _, batch = self._sample()
        view, atom_sel = mask_atoms(batch, self.train.mask_rate, self.gen, self.train.atom_masking)
        view, bond_sel = mask_bonds(view, self.train.mask_rate, self.gen)
        h = self.model.backbone(view.x, view.edge_index, view.edge_attr)[-1]
        losses = self.heads_a.loss(h, batch, batch.x[:, 0], atom_sel, batch.edge_attr[:, 0], bond_sel)
        if self.heads_a.attributes is not None:
            losses["attributes"] = self.heads_a.attribute_loss(h, batch.x, atom_sel)
        return losses

    def _view(self, batch: GraphBatch) -> GraphBatch:
        """One masked view (stages B, C): atoms, and the SMILES tokens where the batch has them."""
        view = mask_atoms(batch, self.train.view_mask_rate, self.gen)[0]
        return mask_tokens(view, self.train.view_mask_rate, self.gen)

    def step_b(self) -> dict[str, torch.Tensor]:
        idx, batch = self._sample()
        t = self.train
        self.model.hap.tau, self.model.hap.hard = tau_at(self.step, t.steps_b)
        n_views = 2 if t.w_contrast > 0 else 1   # a second view only feeds the contrastive term
        views = [self._view(batch) for _ in range(n_views)]
        pooled, out = [], None
        for view in views:
            with torch.no_grad():
                levels = self.model.backbone(view.x, view.edge_index, view.edge_attr)
            out = self.model(view, levels=levels)
            pooled.append(out.tokens.mean(1))
        losses = self.heads_b.loss(pooled[0], torch.from_numpy(self.corpus.fp[idx]), torch.from_numpy(self.corpus.desc[idx]))
        losses = {k: v * t.loss_weights.get(k, 1.0) for k, v in losses.items()}
        if n_views == 2:
            proj = [self.heads_b.projection(p) for p in pooled]
            losses["contrast"] = t.w_contrast * nt_xent(proj[0], proj[1])
        assert out is not None
        return {**losses, **self._routing_losses(out, idx)}

    def _routing_losses(self, out, idx: np.ndarray) -> dict[str, torch.Tensor]:  # noqa: ANN001 (EncoderOutput)
        """SAF load balancing, HAP gate balance and (with the scaffold router) scaffold-routing
        contrast, shared by stages B and C; records the gate usage for the log."""
        t = self.train
        losses = {"balance": t.w_balance * load_balancing_loss(out.router_logits, out.expert_index, self.model.config.n_experts),
                  "gate_balance": t.w_gate_balance * gate_balance_loss(out.gate_logits, out.gate_weights)}
        if self.model.config.scaffold_router:
            scaffold = torch.from_numpy(self.corpus.scaffold_id[idx])
            losses["scaffold"] = t.w_scaffold * scaffold_routing_contrastive(out.router_logits, scaffold)
        self._gate_usage = out.gate_weights.detach().argmax(-1).float().mean(0)
        return losses

    def step_c(self) -> dict[str, torch.Tensor]:
        idx, batch = self._sample()
        t = self.train
        self.model.hap.tau, self.model.hap.hard = tau_at(1, 1)   # the final temperature, hard routing
        n_views = 2 if t.w_contrast > 0 else 1
        views = [self._view(batch) for _ in range(n_views)]
        outs = []
        for view in views:
            if t.freeze_backbone_c:
                with torch.no_grad():
                    levels = self.model.backbone(view.x, view.edge_index, view.edge_attr)
                outs.append(self.model(view, levels=levels))
            else:
                outs.append(self.model(view))
        out = outs[0]
        c = self.corpus
        read = [o.pooled if t.heads_on == "pooled" else o.fused for o in outs]
        losses = self.heads_c.loss(read[0], torch.from_numpy(c.fp[idx]), torch.from_numpy(c.counts[idx]),
                                   torch.from_numpy(c.desc[idx]))
        losses = {k: v * t.loss_weights.get(k, 1.0) for k, v in losses.items()}
        if n_views == 2:
            proj = [self.heads_c.projection(r) for r in read]
            losses["contrast"] = t.w_contrast * nt_xent(proj[0], proj[1])
        return {**losses, **self._routing_losses(out, idx)}

    def run(self, progress: Callable[[str, int, int, dict], None] | None = None, stop_after: int | None = None,
            stop: Callable[[], bool] | None = None) -> bool:
        """Train to the end (True), or checkpoint and stop once stop_after steps are done in all, or
        at the first step boundary where stop() says so (a signal: run.StopSignals) (False)."""
        while True:
            if (stop_after is not None and self.global_step >= stop_after) or (stop is not None and stop()):
                self.save_checkpoint()
                return False
            total = self.steps_in(self.stage)
            if self.step >= total:
                later = [s for s in STAGES[STAGES.index(self.stage) + 1:] if self.steps_in(s) > 0]
                if not later:
                    break
                self.stage, self.step = later[0], 0
                self.opt = self._optimizer()
                continue
            for g in self.opt.param_groups:
                g["lr"] = g["base_lr"] * lr_factor(self.step, total, self.train.warmup)
            self.model.train()
            if self.stage == "b" or (self.stage == "c" and self.train.freeze_backbone_c):
                self.model.backbone.eval()  # frozen (no dropout)
            losses = {"a": self.step_a, "b": self.step_b, "c": self.step_c}[self.stage]()
            loss = sum(losses.values())
            self.opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[union-attr]
            params = [p for group in self.opt.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            self.opt.step()
            self.step += 1
            record = {"stage": self.stage, "step": self.step, **{k: round(float(v.detach()), 5) for k, v in losses.items()}}
            if self.stage != "a":
                record["mamba_share"] = [round(float(v), 3) for v in self._gate_usage]
            if self.step % 20 == 0 or self.step == total:
                record["elapsed_s"] = round(self.elapsed(), 1)
                self.history.append(record)
            if progress:
                progress(self.stage, self.step, total, record)
            if self.step % self.train.checkpoint_every == 0:
                self.save_checkpoint()
        self.save_checkpoint()
        return True

    def final_losses(self) -> dict[str, dict]:
        """Each stage's last logged losses (wall times stay in history.json: they differ run to run)."""
        last: dict[str, dict] = {}
        for rec in self.history:
            last[rec["stage"]] = {k: v for k, v in rec.items() if k != "elapsed_s"}
        return last
