"""Teach the tiny VLM VCA's reply format for the study, in two stages. (1) Frame → what it shows: one frame
of a generated training video, half of them needle frames, → "frames: 1 <colour> [digit <d>]" (the
needle is rare in calls, so reading digits is taught on balanced single frames first). (2) Calls: record
the calls a scripted viewer (noise 0) answers while exploring the training videos (VCA at several
budgets, and uniform answers) and fine-tune on (call with its frames → the viewer's reply), a fifth of
the steps still single frames. The reply starts with what each frame shows, so the VLM reads the frames
from pixels, then writes the scores and the answer from that.

Usage (the study calls it): python benchmarks/vca_distill.py --data DIR --out DIR [--frame-steps 2000] [--steps 3000]
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


def frame_example(rng: random.Random, data: Path, rows: list, videos: dict):
    """(video, one-frame call, its description): half the time a needle frame."""
    from mmthink.methods.vca.prompts import Call, Frame
    from mmthink.tasks.needle import shown_at

    row = rows[rng.randrange(len(rows))]
    video = videos.setdefault(row["id"], open_video(data / row["video"]))
    n = row["truth"]["needle"]
    t = rng.uniform(n["start"], n["end"]) if rng.random() < 0.5 else rng.uniform(0, video.duration)
    i = video.index(t)
    seen = shown_at(row["truth"], video.times[i])
    call = Call("answer", "What does the frame show?", [], [Frame(1, video.times[i], i)])
    return video, call, "frames: 1 " + seen.colour + (f" digit {seen.digit}" if seen.digit is not None else "")


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
    ap.add_argument("--frame-steps", type=int, default=2000, help="stage 1: single frames")
    ap.add_argument("--steps", type=int, default=3000, help="stage 2: calls (a fifth of them single frames)")
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
    data = Path(args.data)
    rows = [json.loads(x) for x in (data / "train.jsonl").read_text().splitlines()]
    videos: dict = {}
    model.train()
    losses = []
    total = args.frame_steps + args.steps
    for step in range(total):
        lr = args.lr * min(1.0, (step + 1) / 50) * (0.1 + 0.9 * (1 - step / total))
        for g in opt.param_groups:
            g["lr"] = lr
        if step < args.frame_steps or rng.random() < 0.2:
            video, call, reply = frame_example(rng, data, rows, videos)
        else:
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
            print(f"step {step + 1}/{total} loss {sum(losses[-100:]) / 100:.4f} ({rate:.2f} steps/s)", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    loaded.image_processor.save_pretrained(out)
    (out / "distill.json").write_text(json.dumps({"calls": len(pairs), "frame_steps": args.frame_steps,
                                                  "steps": args.steps, "lr": args.lr,
                                                  "first_loss": sum(losses[:50]) / 50, "last_loss": sum(losses[-100:]) / 100,
                                                  "seconds": round(time.monotonic() - t0)}))


if __name__ == "__main__":
    main()
