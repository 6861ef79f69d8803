"""The options of one `hsafeat pretrain` release, and the command line that reproduces it.

The card's `command` is rebuilt from these parsed values (every option, defaults included), never
copied from sys.argv: run again, the same string makes the same release. `--resume` and
`--stop-after` are not options of the release: they only say how the run is split into sittings,
which does not change its result (tests/integration/test_release_resume.py)."""
from __future__ import annotations

import math
import shlex
from dataclasses import asdict, dataclass, fields
from enum import Enum
from pathlib import Path

from hsafeat.chem.smiles_tokens import VOCAB_SIZE as SMILES_VOCAB_SIZE
from hsafeat.nn.config import EncoderConfig
from hsafeat.pretrain.loop import TrainConfig
from hsafeat.pretrain.readout_fit import ReadoutConfig

NOT_IN_RUN_IDENTITY = ("out", "workdir", "corpus_credit", "recommended_column")


@dataclass(frozen=True)
class PretrainOptions:
    """One field per CLI option, named as the option (`n_molecules` is `--n-molecules`)."""
    out: Path
    corpus: Path
    corpus_credit: str | None
    workdir: Path
    n_molecules: int | None
    steps_a: int
    steps_b: int
    steps_c: int
    batch_size: int
    lr: float
    lr_c: float
    backbone_lr_scale: float
    freeze_backbone_c: bool
    w_contrast: float
    atom_masking: str
    heads_on: str
    batching: str
    targets: str
    init_from: str | None
    d_model: int
    d_out: int
    scaffold_router: bool
    size_embedding: bool
    vocab_size: int
    seed: int
    readout: str
    readout_hidden: int
    readout_epochs: int
    readout_lr: float
    threads: int
    recommended_column: str | None
    smiles_branch: bool = False   # last, with a default: options recorded before it existed still build

    def __post_init__(self) -> None:
        for f in fields(self):  # Typer hands over enum members; the options keep their plain values
            value = getattr(self, f.name)
            if isinstance(value, Enum):
                object.__setattr__(self, f.name, value.value)

    def problems(self) -> list[str]:
        """The option values no run can use, one line each naming the option and its rule (checked
        before any work: an impossible value must not wait for the corpus to be featurized)."""
        out = []
        for name in ("lr", "lr_c", "readout_lr"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                out.append(f"{_flag(name)} must be a learning rate > 0, got {value}")
        for name in ("backbone_lr_scale", "w_contrast"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                out.append(f"{_flag(name)} must be a number >= 0, got {value}")
        sizes = EncoderConfig()  # the attention layers split d_model into this many heads
        heads = math.lcm(sizes.n_heads, sizes.smiles_heads) if self.smiles_branch else sizes.n_heads
        if self.d_model < heads or self.d_model % heads:
            out.append(f"--d-model must be a positive multiple of {heads} (the attention heads), got {self.d_model}")
        if self.d_out < 1:
            out.append(f"--d-out must be >= 1, got {self.d_out}")
        if self.vocab_size < 1:
            out.append(f"--vocab-size must be >= 1 (UNK included), got {self.vocab_size}")
        if self.steps_a == self.steps_b == self.steps_c == 0 and self.readout == "none":
            out.append("nothing to train: --steps-a, --steps-b and --steps-c are 0 and --readout is none")
        return out

    def args(self) -> list[str]:
        out: list[str] = []
        for f in fields(self):
            value, flag = getattr(self, f.name), "--" + f.name.replace("_", "-")
            if value is None:
                continue
            if isinstance(value, bool):
                out.append(flag if value else "--no-" + flag[2:])
            else:
                out += [flag, str(value)]
        return out

    def command(self) -> str:
        return shlex.join(["hsafeat", "pretrain", *self.args()])

    def run_identity(self) -> dict:
        """What a resumed run must share with the run it continues: everything that changes the
        tensors (not the names of the output directory and the workdir, nor what only the card or
        config.json say: the corpus credit and the recommended column)."""
        identity = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items() if k not in NOT_IN_RUN_IDENTITY}
        if not self.smiles_branch:  # runs started before the option existed (without it) still resume
            del identity["smiles_branch"]
        return identity

    def train_config(self) -> TrainConfig:
        return TrainConfig(steps_a=self.steps_a, steps_b=self.steps_b, steps_c=self.steps_c, batch_size=self.batch_size,
                           lr=self.lr, lr_c=self.lr_c, backbone_lr_scale=self.backbone_lr_scale,
                           freeze_backbone_c=self.freeze_backbone_c, w_contrast=self.w_contrast, seed=self.seed,
                           atom_masking=self.atom_masking, heads_on=self.heads_on,
                           batching=self.batching)

    def encoder_options(self) -> dict:
        branch = {"smiles_branch": True, "smiles_vocab": SMILES_VOCAB_SIZE} if self.smiles_branch else {}
        return {"d_model": self.d_model, "d_out": self.d_out, "scaffold_router": self.scaffold_router,
                "size_embedding": self.size_embedding, **branch}

    def readout_config(self) -> ReadoutConfig:
        return ReadoutConfig(kind=self.readout, hidden=self.readout_hidden if self.readout == "pooled_mlp" else 0,
                             epochs=self.readout_epochs, lr=self.readout_lr, seed=self.seed)


def _flag(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")
