"""Release weights that carry the descriptor readout of the stage-C run that trained them.

    python scripts/attach_readout.py --weights hsanet-moses-v2 \
        --checkpoint pretrain-work/c2-nosize/checkpoint.pt --out weights/hsanet-moses-v2.1

Runs trained before the readout existed saved only the encoder; their training checkpoint still
holds the descriptor head that was fitted jointly with it. This copies that head into a new
release (the source weights stay untouched) after checking that the checkpoint's encoder is
bit-identical to the weights, so the head belongs to exactly these tensors. The descriptor names
are the card's `targets.descriptors` (the order the head was trained in)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from hsafeat.weights import load_weights, save_weights


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True, help="released weights (name or directory)")
    ap.add_argument("--checkpoint", required=True, help="the stage-C training checkpoint of those weights")
    ap.add_argument("--out", required=True, type=Path)
    a = ap.parse_args()

    source = load_weights(a.weights)
    state = torch.load(a.checkpoint, map_location="cpu", weights_only=True)
    ours = source.model.state_dict()
    if set(ours) != set(state["model"]) or any(not torch.equal(ours[k], state["model"][k]) for k in ours):
        sys.exit(f"{a.checkpoint} does not hold the encoder of {source.name}: refusing to attach its head")
    names = source.card["targets"]["descriptors"]
    weight, bias = state["heads_c"]["desc.weight"], state["heads_c"]["desc.bias"]
    if weight.shape[0] != len(names):
        sys.exit(f"the checkpoint's head predicts {weight.shape[0]} descriptors, the card names {len(names)}")
    head = torch.nn.Linear(weight.shape[1], weight.shape[0])
    head.load_state_dict({"weight": weight, "bias": bias})
    model = source.model.with_readout(head, names)

    card = {k: v for k, v in source.card.items() if k not in ("name", "sha256")}
    card["encoder_config"] = model.config.to_dict()
    card["readout"] = {
        "what": "desc_pred column: the linear head of stage C that predicts the standardised RDKit descriptors "
                "(targets.descriptors, same order) from fused; trained jointly with this encoder",
        "source_weights": {"name": source.name, "sha256": source.sha256},
        "command": " ".join(["python scripts/attach_readout.py", *sys.argv[1:]]),
    }
    digest = save_weights(a.out, model, source.fragment_vocab, source.max_atoms, card)
    print(json.dumps({"out": str(a.out), "sha256": digest, "descriptors": len(names)}))


if __name__ == "__main__":
    main()
