"""Encoder configuration: a frozen dataclass of JSON-able values; to_dict() is config.json's
"encoder" section."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


@dataclass(frozen=True)
class EncoderConfig:
    atom_vocab: dict[str, int] = field(default_factory=dict)   # feature name -> n categories
    bond_vocab: dict[str, int] = field(default_factory=dict)
    n_fragments: int = 1            # fragment vocabulary size including UNK (id 0)
    d_model: int = 128              # GNN width = token width
    n_layers: int = 5               # GINE layers; levels = n_layers + 1
    n_queries: int = 4              # tokens per level (cross-attention queries / Mamba readouts)
    n_heads: int = 4
    d_state: int = 8                # Mamba (small: the CPU reference scan dominates training)
    d_conv: int = 4
    expand: int = 1
    dt_rank: int = 8
    n_experts: int = 4              # SAF
    top_k: int = 2
    d_out: int = 128
    scaffold_router: bool = False   # H-MoE scaffold-aware routing
    size_embedding: bool = False    # log atom/bond/fragment counts added to the tokens (nn/size.py)
    readout_descriptors: tuple[str, ...] = ()   # names of the descriptors the readout predicts (encoder.py)
    readout_kind: str = "linear"    # nn/readout.py: "linear" on fused, or "pooled_mlp" on fused + level sums
    readout_hidden: int = 0         # pooled_mlp's hidden width
    dropout: float = 0.0
    # DMCA's SMILES branch (nn/smiles_branch.py), off by default. These keys appear in config.json
    # only when it is on: configs without them load, and existing weights' to_dict() is unchanged.
    smiles_branch: bool = False
    smiles_vocab: int = 0           # token vocabulary size (chem/smiles_tokens.VOCAB_SIZE when built)
    smiles_layers: int = 2          # transformer layers over the tokens
    smiles_heads: int = 4
    smiles_max_len: int = 256       # ids per molecule, CLS included (featurization cuts to it)

    @property
    def n_levels(self) -> int:
        return self.n_layers + 1

    @property
    def n_sources(self) -> int:
        return self.n_levels + 1  # levels + motif

    @property
    def n_tokens(self) -> int:
        return self.n_sources * self.n_queries

    @property
    def pooled_dim(self) -> int:
        """`pooled`: fused plus every GNN level's summed node states (nn/readout.py)."""
        return 2 * self.d_out + self.n_levels * self.d_model

    def column_dims(self) -> dict[str, int]:
        """The embedding columns these weights write, and their widths."""
        dims = {"fused": 2 * self.d_out, **{f"level_{i}": self.d_out for i in range(self.n_levels)}, "motif": self.d_out,
                "pooled": self.pooled_dim}
        if self.readout_descriptors:
            dims["desc_pred"] = len(self.readout_descriptors)
        return dims

    @property
    def token_len(self) -> int:
        """SMILES ids the featurization must give each molecule (0: none, no branch)."""
        return self.smiles_max_len if self.smiles_branch else 0

    def to_dict(self) -> dict:
        data = asdict(self)
        if not self.smiles_branch:
            data = {k: v for k, v in data.items() if not k.startswith("smiles_")}
        return data

    @classmethod
    def from_dict(cls, data: dict) -> EncoderConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown encoder config keys: {sorted(unknown)}")
        if "readout_descriptors" in data:  # JSON has lists; the frozen config keeps a tuple
            data = {**data, "readout_descriptors": tuple(data["readout_descriptors"])}
        return cls(**data)
