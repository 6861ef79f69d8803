"""`hsafeat info`: a short summary of the weights in use (`--json`: the whole card), dev-set scores
from scores.json beside the card, else the card's own `benchmark` field; `hsafeat weights` lists
the bundled weights."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hsafeat.weights import DEFAULT_WEIGHTS, bundled_dir
from tests.cli import assert_ok, invoke, single_thread_torch  # noqa: F401  (autouse fixture)

BENCHMARK_REPORT = {  # the shape of `hsafeat benchmark --out-dir`'s benchmark.json
    "featurizers": ["fused", "ecfp"],
    "datasets": {
        "bbbp": {"metric": "auroc", "results": {"fused": {"best": 0.91234, "best_head": "rf"},
                                                "ecfp": {"best": 0.9, "best_head": "rf"}}},
        "esol": {"metric": "rmse", "results": {"fused": {"best": 1.0567, "best_head": "linear"},
                                               "ecfp": {"best": 1.2, "best_head": "rf"}}},
    },
}


@pytest.fixture
def weights(tiny_weights: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "tiny-info"
    shutil.copytree(tiny_weights, copy)
    return copy


def card(path: Path) -> dict:
    return json.loads((path / "card.json").read_text())


def summary(weights: Path) -> str:
    result = invoke(["info"], weights)
    assert_ok(result)
    return result.stdout


def test_summary_names_the_weights_and_their_columns(weights: Path) -> None:
    text = summary(weights)
    lines = text.splitlines()
    assert len(lines) <= 15  # short: the whole card is --json
    assert f"name      {weights.name}" in lines
    assert card(weights)["sha256"] in text
    assert "corpus    not recorded" in lines  # the test card records none
    assert "recipe    command not recorded" in lines
    assert "no scores recorded" in text
    config = json.loads((weights / "config.json").read_text())["encoder"]
    columns = next(line for line in lines if line.startswith("columns"))
    assert f"fused [{2 * config['d_out']}]" in columns and f"motif [{config['d_out']}]" in columns
    assert f"level_{config['n_layers']} [{config['d_out']}]" in columns


def test_scores_from_the_card_then_from_scores_json(weights: Path) -> None:
    data = card(weights)
    data["benchmark"] = {"command": "dev_quality.py", "tiny (fused)": {"bbbp": {"metric": "auroc", "best": 0.8}}}
    (weights / "card.json").write_text(json.dumps(data))
    text = summary(weights)
    assert "from card.json 'benchmark'" in text and "tiny (fused): bbbp auroc 0.8000" in text
    assert "dev_quality.py" not in text  # text fields are for --json

    (weights / "scores.json").write_text(json.dumps(BENCHMARK_REPORT))
    text = summary(weights)
    assert str(weights / "scores.json") in text
    assert "fused: bbbp auroc 0.9123, esol rmse 1.0567" in text
    assert "ecfp: bbbp auroc 0.9000, esol rmse 1.2000" in text
    assert "tiny (fused)" not in text  # later scores win over the card's


def test_json_is_the_whole_card(weights: Path) -> None:
    (weights / "scores.json").write_text(json.dumps(BENCHMARK_REPORT))
    result = invoke(["info", "--json"], weights)
    assert_ok(result)
    printed = json.loads(result.stdout)
    for key, value in card(weights).items():
        assert printed[key] == value, key
    assert printed["path"] == str(weights)
    assert printed["scores"] == BENCHMARK_REPORT
    assert set(printed["dims"]) >= {"fused", "motif"}


def test_info_on_the_default_weights() -> None:
    result = invoke(["info"])
    assert_ok(result)
    assert f"name      {DEFAULT_WEIGHTS} (default)" in result.stdout.splitlines()
    shipped = bundled_dir() / DEFAULT_WEIGHTS
    recorded = (shipped / "scores.json").is_file() or "benchmark" in card(shipped)
    assert ("no scores recorded" in result.stdout) != recorded


def test_weights_lists_the_bundled_weights() -> None:
    result = invoke(["weights"])
    assert_ok(result)
    lines = result.stdout.splitlines()
    shipped = sorted(p.name for p in bundled_dir().iterdir() if (p / "card.json").is_file())
    assert len(lines) == len(shipped) > 0
    for line, name in zip(lines, shipped, strict=True):
        marker, listed, sha, description = line[0], *line[2:].split(maxsplit=2)
        assert listed == name
        assert (marker == "*") == (name == DEFAULT_WEIGHTS)
        assert sha == card(bundled_dir() / name)["sha256"][:12]
        assert description
    assert "* default" in result.stderr
