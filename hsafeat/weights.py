"""Versioned, verified weight directories: weights/<name>/{config.json, model.safetensors, card.json}.

Loading is strict and pickle-free (JSON + safetensors); the sha256 of model.safetensors must match
the card. A released directory is never edited: new training gives a new name."""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save

from hsafeat.chem.features import feature_spec
from hsafeat.chem.fragments import vocabulary_index
from hsafeat.hashing import sha256_file
from hsafeat.nn.config import EncoderConfig
from hsafeat.nn.encoder import HSAEncoder

FORMAT_VERSION = 1
DEFAULT_WEIGHTS = "hsanet-moses-v2.2"
ENV_WEIGHTS = "HSAFEAT_WEIGHTS"
DESC_TARGETS_FILE = "desc_targets.json"  # sidecar: how desc_pred's targets were standardised


class WeightsError(Exception):
    """Missing, corrupted or incompatible weights (one-line message)."""


@dataclass
class LoadedWeights:
    name: str
    path: Path
    config: EncoderConfig
    fragment_vocab: list[str]
    max_atoms: int
    card: dict
    sha256: str
    model: HSAEncoder
    recommended_column: str = "fused"

    @property
    def vocab_index(self) -> dict[str, int]:
        return vocabulary_index(self.fragment_vocab)


def recommended_column(config: dict, encoder: EncoderConfig) -> str:
    """The column these weights recommend: config.json's "recommended_column", which releases made
    by `hsafeat pretrain` name; weights from before it recommend desc_pred where they have it
    (their cards' measurements), else fused."""
    named = config.get("recommended_column")
    dims = encoder.column_dims()
    if named is not None:
        if named not in dims:
            raise WeightsError(f"config.json recommends column {named!r}, which these weights do not write")
        return named
    return "desc_pred" if "desc_pred" in dims else "fused"


def bundled_dir() -> Path:
    """Weights shipped inside the installed package (the wheel maps the repository's top-level
    weights/ to hsafeat/weights); a source checkout or editable install reads weights/ directly."""
    packaged = Path(str(resources.files("hsafeat"))) / "weights"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "weights"


def resolve(name_or_dir: str | None) -> Path:
    """A directory path, or a name looked up in the bundled weights (default: $HSAFEAT_WEIGHTS or
    the package default)."""
    choice = name_or_dir or os.environ.get(ENV_WEIGHTS) or DEFAULT_WEIGHTS
    as_path = Path(choice).expanduser()
    if as_path.is_dir():
        return as_path
    bundled = bundled_dir() / choice
    if bundled.is_dir():
        return bundled
    known = (sorted(p.name for p in bundled_dir().iterdir() if p.is_dir() and not p.name.startswith("."))
             if bundled_dir().is_dir() else [])  # weights/.unfinished: an unmade release's command, not weights
    raise WeightsError(f"weights '{choice}' not found (not a directory; bundled: {', '.join(known) or 'none'})")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise WeightsError(f"missing {path.name} in {path.parent}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WeightsError(f"{path} is not valid JSON: {exc}") from None


def load_weights(name_or_dir: str | None = None, device: str | torch.device = "cpu") -> LoadedWeights:
    path = resolve(name_or_dir)
    config = _read_json(path / "config.json")
    card = _read_json(path / "card.json")
    if config.get("format_version") != FORMAT_VERSION:
        raise WeightsError(
            f"{path / 'config.json'}: weights format version {config.get('format_version')!r} is not supported "
            f"(this hsafeat reads version {FORMAT_VERSION})"
        )
    featurizer = config["featurizer"]
    if featurizer["feature_spec"] != feature_spec():
        raise WeightsError(f"{path}: weights were trained with another atom/bond feature spec")
    tensors = path / "model.safetensors"
    if not tensors.is_file():
        raise WeightsError(f"missing {tensors}")
    digest = sha256_file(tensors)
    if digest != card.get("sha256"):
        raise WeightsError(f"checksum mismatch for {tensors}: expected {card.get('sha256')}, got {digest}")
    encoder_config = EncoderConfig.from_dict(config["encoder"])
    model = HSAEncoder(encoder_config)
    try:
        model.load_state_dict(load_file(str(tensors)), strict=True)
    except (RuntimeError, OSError) as exc:
        raise WeightsError(f"{tensors} does not match its config: {str(exc).splitlines()[0]}") from None
    model.eval().to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    return LoadedWeights(
        name=path.name, path=path, config=encoder_config, fragment_vocab=featurizer["fragment_vocab"],
        max_atoms=featurizer["max_atoms"], card=card, sha256=digest, model=model,
        recommended_column=recommended_column(config, encoder_config),
    )


@dataclass(frozen=True)
class DescTargets:
    """A release's desc_targets.json: the statistics that standardised its descriptor targets,
    in the readout's output order, so desc_pred * std + mean is in RDKit's own units."""
    names: list[str]
    mean: np.ndarray  # float64, one per readout output
    std: np.ndarray
    transform: str    # how raw values became targets (clipping...)
    provenance: str   # the command, corpus and molecules that made the file


def load_desc_targets(weights: LoadedWeights) -> DescTargets | None:
    """The release's descriptor statistics (None when it ships none), checked against its readout."""
    path = weights.path / DESC_TARGETS_FILE
    if not path.is_file():
        return None
    data = _read_json(path)
    try:
        names, mean, std = list(data["names"]), np.asarray(data["mean"], float), np.asarray(data["std"], float)
        transform, provenance = str(data["transform"]), str(data["provenance"])
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"{path}: expected names, mean, std, transform and provenance ({exc})") from None
    if names != list(weights.config.readout_descriptors):
        raise WeightsError(f"{path} names other descriptors than the readout of {weights.name} predicts")
    if mean.shape != (len(names),) or std.shape != (len(names),):
        raise WeightsError(f"{path}: mean and std must hold one number per descriptor ({len(names)})")
    if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
        raise WeightsError(f"{path}: mean and std must be finite and std positive")
    return DescTargets(names, mean, std, transform, provenance)


def save_weights(
    out_dir: Path, model: HSAEncoder, fragment_vocab: list[str], max_atoms: int, card: dict,
) -> str:
    """Write a new release directory; refuses to overwrite one. Returns the tensors' sha256."""
    return save_release(out_dir, model, fragment_vocab, max_atoms, card)


def save_release(
    out_dir: Path, model: HSAEncoder, fragment_vocab: list[str], max_atoms: int, card: dict,
    sidecars: dict[str, dict] | None = None, recommended: str | None = None,
) -> str:
    """Write a release directory whole or not at all: tensors, config.json and the sidecar JSON
    files (e.g. desc_targets.json), then card.json last, which records the sha256 of every other
    file under "files" (and the tensors' under "sha256", what load_weights checks). The files are
    written to a hidden sibling directory that is renamed into place. Refuses an existing release
    or a non-empty directory. recommended: the column config.json names for users (recommended_column).
    Returns the tensors' sha256."""
    out_dir = Path(out_dir)
    if (out_dir / "model.safetensors").exists():
        raise WeightsError(f"{out_dir} already holds weights; releases are immutable, choose a new name")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise WeightsError(f"{out_dir} is not empty; a release is written into a new directory")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.partial"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        digest = _write_release(staging, out_dir, model, fragment_vocab, max_atoms, card, sidecars, recommended)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # no half-written release is left behind, hidden or not
        raise
    return digest


def _write_release(staging: Path, out_dir: Path, model: HSAEncoder, fragment_vocab: list[str], max_atoms: int,
                   card: dict, sidecars: dict[str, dict] | None, recommended: str | None) -> str:
    """save_release's files, written into `staging` and renamed to out_dir."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    # the bytes save_file writes, but created like the other files (0644 under the usual umask;
    # save_file makes the file 0600)
    (staging / "model.safetensors").write_bytes(save(state))
    config = {
        "format_version": FORMAT_VERSION,
        "encoder": model.config.to_dict(),
        "featurizer": {"feature_spec": feature_spec(), "fragment_vocab": fragment_vocab, "max_atoms": max_atoms},
        **({"recommended_column": recommended} if recommended is not None else {}),
    }
    recommended_column(config, model.config)  # refuses a column these weights do not write
    (staging / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    for name, content in (sidecars or {}).items():
        (staging / name).write_text(json.dumps(content, indent=1) + "\n")
    files = {p.name: sha256_file(p) for p in sorted(staging.iterdir())}
    digest = files["model.safetensors"]
    (staging / "card.json").write_text(
        json.dumps({"name": out_dir.name, **card, "files": files, "sha256": digest}, indent=1) + "\n")
    if out_dir.is_dir():
        out_dir.rmdir()  # empty (checked above): rename needs the name free
    staging.rename(out_dir)
    return digest
