import json
import shutil

import pytest
import torch

from hsafeat.weights import FORMAT_VERSION, WeightsError, load_weights, save_weights
from tests.conftest import TEST_VOCAB, tiny_model


def test_round_trip_is_exact(tiny_weights):
    loaded = load_weights(str(tiny_weights))
    reference = tiny_model()
    for name, tensor in reference.state_dict().items():
        assert torch.equal(tensor, loaded.model.state_dict()[name]), name
    assert loaded.fragment_vocab == TEST_VOCAB
    assert loaded.card["sha256"] == loaded.sha256
    assert not any(p.requires_grad for p in loaded.model.parameters())
    assert not loaded.model.training


def test_release_is_immutable(tiny_weights):
    with pytest.raises(WeightsError, match="immutable"):
        save_weights(tiny_weights, tiny_model(), TEST_VOCAB, 500, {})


def test_corrupted_tensors_fail_with_checksum(tiny_weights, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_weights, bad)
    data = bytearray((bad / "model.safetensors").read_bytes())
    data[-10] ^= 0xFF
    (bad / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="checksum mismatch.*model.safetensors"):
        load_weights(str(bad))


def test_truncated_tensors_fail(tiny_weights, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_weights, bad)
    data = (bad / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="checksum"):
        load_weights(str(bad))


def test_unknown_format_version(tiny_weights, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_weights, bad)
    config = json.loads((bad / "config.json").read_text())
    config["format_version"] = FORMAT_VERSION + 1
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match="format version"):
        load_weights(str(bad))


def test_missing_weights_name():
    with pytest.raises(WeightsError, match="not found"):
        load_weights("no-such-weights")


def test_strict_loading(tiny_weights, tmp_path):
    """Tensors that do not match the config are refused (even with a correct checksum)."""
    from safetensors.torch import load_file, save_file

    from hsafeat.weights import sha256_file

    bad = tmp_path / "bad"
    shutil.copytree(tiny_weights, bad)
    state = load_file(str(bad / "model.safetensors"))
    state.pop(next(iter(state)))
    save_file(state, str(bad / "model.safetensors"))
    card = json.loads((bad / "card.json").read_text())
    card["sha256"] = sha256_file(bad / "model.safetensors")
    (bad / "card.json").write_text(json.dumps(card))
    with pytest.raises(WeightsError, match="does not match its config"):
        load_weights(str(bad))


def test_recommended_column_is_named_by_config_or_follows_the_legacy_rule(tiny_weights, tmp_path):
    from hsafeat.weights import save_release

    assert load_weights(str(tiny_weights)).recommended_column == "fused"   # no readout, nothing named
    assert load_weights("hsanet-moses-v2.2").recommended_column == "desc_pred"  # a readout, nothing named
    named = tmp_path / "named"
    save_release(named, tiny_model(), TEST_VOCAB, 500, {}, recommended="pooled")
    assert json.loads((named / "config.json").read_text())["recommended_column"] == "pooled"
    assert load_weights(str(named)).recommended_column == "pooled"
    with pytest.raises(WeightsError, match="desc_pred"):
        save_release(tmp_path / "refused", tiny_model(), TEST_VOCAB, 500, {}, recommended="desc_pred")
    assert not (tmp_path / "refused").exists()
    assert not (tmp_path / ".refused.partial").exists()   # nor its half-written files, hidden beside it


def test_release_files_share_one_mode(tmp_path):
    """model.safetensors is created like the other files (0644 under umask 022, as shipped),
    with the bytes save_file writes."""
    import os

    from safetensors.torch import save_file

    from hsafeat.weights import save_release

    model = tiny_model()
    save_release(tmp_path / "w", model, TEST_VOCAB, 500, {})
    umask = os.umask(0)
    os.umask(umask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "w").iterdir()}
    assert set(modes.values()) == {0o666 & ~umask}, modes
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "ref.safetensors"))
    assert (tmp_path / "w" / "model.safetensors").read_bytes() == (tmp_path / "ref.safetensors").read_bytes()
