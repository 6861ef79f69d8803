"""Cost of stage-C training steps on broad-corpus molecules: seconds per step and peak memory.

    python benchmarks/pretrain_step.py --out benchmarks/results/pretrain_step.json
    PYTHONPATH=/path/to/other/checkout python benchmarks/pretrain_step.py   # the same steps, other code

Continues --init (released weights) end to end as `hsafeat pretrain --init-from ... --steps-c N
--batching size --heads-on pooled --targets v2` does, for --steps steps (32 is one "size" pool:
batches of similar size, so exactly one of them holds the pool's largest molecules, whose padded
length every row of that batch pays for). The featurized molecules are cached in --cache, so
repeated runs time the steps alone. Reports every step's seconds and its batch's largest
molecule, the mean and median step, the slowest step, and the process's peak RSS (VmHWM)."""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from hsafeat.pretrain.corpus import load_cache, prepare
from hsafeat.pretrain.loop import TrainConfig, Trainer
from hsafeat.weights import load_weights


def peak_rss_gib() -> float:
    with open("/proc/self/status") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
    return kib / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=Path("../shared/data/pretrain/broad_corpus.tsv.gz"))
    ap.add_argument("--n-molecules", type=int, default=4000)
    ap.add_argument("--init", default="hsanet-broad-v3")
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/hsafeat-pretrain-step"))
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    init = load_weights(args.init)
    cache = args.cache / f"corpus-{args.n_molecules}-{init.sha256[:12]}.npz"
    if not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        prepare(args.corpus, cache, args.n_molecules, 0, len(init.fragment_vocab), targets="v2", vocab=init.fragment_vocab)
    data = load_cache(cache)
    config = replace(init.config, readout_descriptors=(), readout_kind="linear", readout_hidden=0)
    train = TrainConfig(steps_a=0, steps_b=0, steps_c=10**6, batch_size=args.batch_size, w_contrast=0.0,
                        heads_on="pooled", batching="size", seed=0, checkpoint_every=10**9)
    trainer = Trainer(data, config, train, args.cache / "run", log=lambda _: None, init=init.model)

    steps: list[dict] = []
    last = time.perf_counter()

    def record(stage: str, step: int, total: int, losses: dict) -> None:
        nonlocal last
        now = time.perf_counter()
        largest = int(trainer._n_atoms[trainer._size_batch(step - 1)].max())
        steps.append({"step": step, "seconds": round(now - last, 3), "largest_molecule_atoms": largest})
        last = now

    trainer.run(record, stop_after=args.steps)
    seconds = [s["seconds"] for s in steps]
    report = {
        "init": init.name, "n_molecules": args.n_molecules, "batch_size": args.batch_size, "threads": args.threads,
        "hsafeat_path": str(Path(sys.modules["hsafeat"].__file__).parent),
        "mean_step_s": round(statistics.mean(seconds), 3), "median_step_s": round(statistics.median(seconds), 3),
        "slowest_step": max(steps, key=lambda s: s["seconds"]), "peak_rss_gib": round(peak_rss_gib(), 2),
        "steps": steps,
    }
    print(json.dumps({k: v for k, v in report.items() if k != "steps"}, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
