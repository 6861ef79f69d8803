"""Weights cards for people: the short summary `hsafeat info` prints, the dev-set scores recorded
for a release, and the list of bundled weights (`hsafeat weights`).

Scores recorded after a release live in `scores.json` beside `card.json` (a card is never edited
after its release); older releases carry them in the card's `benchmark` field."""
from __future__ import annotations

import json
from numbers import Real
from pathlib import Path
from typing import Any

SCORES_FILE = "scores.json"


def _section(card: dict[str, Any], key: str) -> dict[str, Any]:
    value = card.get(key)
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _cell(name: str, value: Any) -> str | None:
    """One dataset's score: `bbbp auroc 0.9227` from {metric, best} or a bare number."""
    if _number(value):
        return f"{name} {value:.4f}"
    if isinstance(value, dict) and _number(value.get("best")):
        return f"{name} {value.get('metric', '')} {value['best']:.4f}".replace("  ", " ")
    return None


def score_lines(scores: dict[str, Any]) -> list[str]:
    """`label: dataset metric score, …` per scored featurizer, from either a `hsafeat benchmark`
    JSON report (`datasets` -> `results`) or a card's `benchmark` field (label -> dataset -> score,
    nested groups such as baselines flattened). Text fields (command, protocol) are left out."""
    if isinstance(scores.get("datasets"), dict):  # hsafeat benchmark --out-dir .../benchmark.json
        table: dict[str, dict[str, Any]] = {}
        for dataset, entry in scores["datasets"].items():
            for featurizer, result in entry.get("results", {}).items():
                table.setdefault(featurizer, {})[dataset] = {"metric": entry.get("metric"), "best": result.get("best")}
        scores = table
    lines, grouped = [], []
    for label, value in scores.items():
        if not isinstance(value, dict):
            continue
        cells = [c for name, v in value.items() if (c := _cell(name, v))]
        if cells:
            lines.append(f"{label}: {', '.join(cells)}")
        else:
            grouped.extend(score_lines(value))  # a group of tables (baselines): after the weights' own
    return lines + grouped


def recorded_scores(weights_dir: Path, card: dict[str, Any]) -> tuple[str, list[str]]:
    """(where the scores come from, their lines); scores.json wins over the card's field."""
    path = weights_dir / SCORES_FILE
    if path.is_file():
        try:
            return str(path), score_lines(json.loads(path.read_text()))
        except (ValueError, OSError) as exc:
            return str(path), [f"unreadable: {exc}"]
    if isinstance(card.get("benchmark"), dict):
        return "card.json 'benchmark'", score_lines(card["benchmark"])
    return "", []


def _corpus(card: dict[str, Any]) -> str:
    corpus = card.get("corpus")
    if not isinstance(corpus, dict):
        return str(corpus) if corpus else "not recorded"
    parts = [str(corpus.get("file", "?"))]
    if corpus.get("sha256"):
        parts[0] += f" (sha256 {str(corpus['sha256'])[:12]})"
    if corpus.get("n_molecules_used"):
        parts.append(f"{corpus['n_molecules_used']:,} molecules")
    if corpus.get("subset"):
        parts.append(str(corpus["subset"]))
    return ", ".join(parts)


def _stages(card: dict[str, Any]) -> str:
    steps = _section(card, "steps")
    done = [f"{k.removeprefix('stage_').upper()} {v:,}" for k, v in steps.items() if k.startswith("stage_") and v]
    batch = f" of {steps['batch_size']}" if done and steps.get("batch_size") else ""
    return f"stage {' + '.join(done)} steps{batch}" if done else ""


def describe(card: dict[str, Any]) -> str:
    """One line: the card's own description, else what it was trained on and how."""
    if card.get("description"):
        return str(card["description"])
    corpus = _section(card, "corpus")
    parts = [_stages(card)]
    if corpus.get("file"):
        n = corpus.get("n_molecules_used")
        parts.append(f"on {f'{n:,} molecules of ' if n else ''}{corpus['file']}")
    if card.get("readout"):
        parts.append("with a desc_pred readout")
    if card.get("note"):
        parts.append(str(card["note"]))
    return " ".join(p for p in parts if p) or "no description recorded"


def summary(name: str, path: Path, sha256: str, card: dict[str, Any], dims: dict[str, int],
            default: bool = False, recommended: str | None = None) -> list[str]:
    """The lines `hsafeat info` prints (`--json` prints the whole card)."""
    objectives = card.get("objectives")
    recipe = [str(card.get("command") or "command not recorded")]
    stages = _stages(card)
    if isinstance(objectives, dict):
        stages += f"{'; ' if stages else ''}objectives of {', '.join(objectives)}: hsafeat info --json"
    if stages:
        recipe.append(stages)
    source, scores = recorded_scores(path, card)
    lines = [
        f"name      {name}{' (default)' if default else ''}",
        f"path      {path}",
        f"sha256    {sha256}",
        f"corpus    {_corpus(card)}",
        f"recipe    {recipe[0]}",
        *(f"          {line}" for line in recipe[1:]),
        f"scores    {f'dev set, from {source}' if scores else 'no scores recorded'}",
        *(f"          {line}" for line in scores),
        f"columns   {', '.join(f'{column} [{d}]' for column, d in dims.items())}",
        *([f"use       {recommended} (the column these weights recommend)"] if recommended else []),
    ]
    return lines


def bundled_weights(directory: Path, default_name: str) -> list[tuple[str, bool, str, str]]:
    """(name, is the default, sha256 prefix, one-line description) per bundled weights directory."""
    rows: list[tuple[str, bool, str, str]] = []
    if not directory.is_dir():
        return rows
    for path in sorted(p for p in directory.iterdir() if (p / "card.json").is_file()):
        try:
            card = json.loads((path / "card.json").read_text())
        except (ValueError, OSError):
            card = {"description": "card.json unreadable"}
        rows.append((path.name, path.name == default_name, str(card.get("sha256", ""))[:12], describe(card)))
    return rows
