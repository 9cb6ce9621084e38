"""Teach the tiny VLM VCA's reply format for the study: record the calls a scripted viewer (noise 0) answers
while exploring generated training videos (VCA at several budgets, and uniform answers), then fine-tune
tiny-qwen2.5-vl on (call with its frames → the viewer's reply). The reply starts with what each frame
shows, so the VLM learns frame → content from pixels, then the scores and the answer from that.

Usage (the study calls it): python benchmarks/vca_distill.py --data DIR --out DIR [--steps 1500]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from mmthink.data.video import open_video
from mmthink.methods.vca.backends import Scripted
from mmthink.methods.vca.config import SearchConfig
from mmthink.methods.vca.explore import explore, uniform
from mmthink.methods.vca.prompts import text_parts
from mmthink.ops.vlm import fit_side


class Recorder:
    """A scripted viewer that keeps every (call, reply) it answers."""

    def __init__(self, truth: dict):
        self.viewer, self.pairs = Scripted(truth), []
        self.name = "scripted"

    def reply(self, call, seed=0):
        text = self.viewer.reply(call, seed)
        self.pairs.append((call, text))
        return text


def record(data: Path, budgets=(12, 20, 32)) -> list:
    rows = [json.loads(x) for x in (data / "train.jsonl").read_text().splitlines()]
    pairs = []
    for row in rows:
        video = open_video(data / row["video"])
        for budget in budgets:
            rec = Recorder(row["truth"])
            explore(video, rec, row["question"], row["options"], SearchConfig(frame_budget=budget))
            uniform(video, rec, row["question"], row["options"], budget)
            pairs += [(video, c, t) for c, t in rec.pairs]
    return pairs


def encode(vlm, video, call, reply: str, side: int):
    import torch

    parts = [(k, v) if k == "text" else ("image", fit_side(video.frame(v.index), side)) for k, v in text_parts(call)]
    ids, vision = vlm.inputs(parts)
    target = vlm.tokenizer(reply + vlm.tokenizer.eos_token, add_special_tokens=False, return_tensors="pt")["input_ids"]
    input_ids = torch.cat([ids, target], 1)
    labels = torch.cat([torch.full_like(ids, -100), target], 1)
    return input_ids, labels, vision


def main() -> None:
    import torch

    from mmthink.models.config import ModelConfig
    from mmthink.models.loading import load_model
    from mmthink.ops.vlm import LocalVLM

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="a folder from mmthink data video --split train")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--image-side", type=int, default=112)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    t0 = time.monotonic()
    pairs = record(Path(args.data))
    print(f"recorded {len(pairs)} calls in {time.monotonic() - t0:.0f} s", flush=True)
    loaded = load_model(ModelConfig(name="tiny-qwen2.5-vl", init_seed=args.seed), train=True)
    model, tok = loaded.model, loaded.tokenizer
    vlm = LocalVLM(model, tok, loaded.image_processor, "tiny-qwen2.5-vl")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    rng = random.Random(args.seed)
    model.train()
    losses = []
    for step in range(args.steps):
        lr = args.lr * min(1.0, (step + 1) / 50) * (0.1 + 0.9 * (1 - step / args.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        video, call, reply = pairs[rng.randrange(len(pairs))]
        input_ids, labels, vision = encode(vlm, video, call, reply, args.image_side)
        loss = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), labels=labels, **vision).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if (step + 1) % 100 == 0:
            rate = (step + 1) / (time.monotonic() - t0)
            print(f"step {step + 1}/{args.steps} loss {sum(losses[-100:]) / 100:.4f} ({rate:.2f} steps/s)", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    loaded.image_processor.save_pretrained(out)
    (out / "distill.json").write_text(json.dumps({"calls": len(pairs), "steps": args.steps, "lr": args.lr,
                                                  "first_loss": sum(losses[:50]) / 50, "last_loss": sum(losses[-100:]) / 100,
                                                  "seconds": round(time.monotonic() - t0)}))


if __name__ == "__main__":
    main()
