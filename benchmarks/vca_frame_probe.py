"""How well a fine-tuned VLM reads single frames of generated needle videos: for frames drawn as in
benchmarks/vca_distill.py stage 1 (half of them needle frames), is the colour right, and on needle frames
the digit? Explains the VCA study's tiny-VLM rows.

Usage: python benchmarks/vca_frame_probe.py --model runs/vca-study/vlm --data runs/vca-study/data/test [--frames 80]
"""

from __future__ import annotations

import argparse
import json
import os
import random
from pathlib import Path

from vca_distill import frame_example

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def main() -> None:
    from mmthink.methods.vca.prompts import text_parts
    from mmthink.models.config import ModelConfig
    from mmthink.models.loading import load_model
    from mmthink.ops.vlm import LocalVLM, fit_side

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True, help="a folder from mmthink data video (test.jsonl)")
    ap.add_argument("--frames", type=int, default=80)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    data = Path(args.data)
    rows = [json.loads(x) for x in (data / "test.jsonl").read_text().splitlines()]
    loaded = load_model(ModelConfig(name=args.model), train=False)
    vlm = LocalVLM(loaded.model, loaded.tokenizer, loaded.image_processor, args.model, 24)
    rng, videos = random.Random(args.seed), {}
    counts = {"needle": {"frames": 0, "colour": 0, "digit": 0}, "other": {"frames": 0, "colour": 0, "no_digit": 0}}
    for _ in range(args.frames):
        video, call, want = frame_example(rng, data, rows, videos)
        parts = [(k, v) if k == "text" else ("image", fit_side(video.frame(v.index), 112)) for k, v in text_parts(call)]
        got = vlm.chat(parts).strip().split("\n")[0].split()
        want = want.split()
        kind = "needle" if "digit" in want else "other"
        c = counts[kind]
        c["frames"] += 1
        c["colour"] += got[2:3] == want[2:3]
        if kind == "needle":
            c["digit"] += got[3:5] == want[3:5]
        else:
            c["no_digit"] += "digit" not in got
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
