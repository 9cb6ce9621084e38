"""Thermometer's inference cost as a percentage of the LM forward on the same prompts (paper: about 0.5%).

Measured in one run: the LM's forward over a task's prompts (batched, the pass that produces the
features and option logits) and the calibrator's forward over those features plus the temperature
scaling of the logits. Both best of --repeats.

Usage: python benchmarks/bench_thermometer.py [--model smollm2-135m-instruct] [--task add_small] [--n 128]
"""

from __future__ import annotations

import argparse
import os
import sys

from common import best_of

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--task", default="add_small")
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import torch

    from mmthink.methods.thermometer.prompting import letter_token_ids, render_prompt
    from mmthink.methods.thermometer.scoring import forward_last
    from mmthink.methods.thermometer.model import Thermometer, dataset_inverse_temperature
    from mmthink.models.config import ModelConfig
    from mmthink.models.loading import load_model
    from mmthink.paths import assets_dir
    from mmthink.tasks.mcq import load_mcq

    rows = load_mcq(assets_dir() / "mcq" / f"{args.task}.jsonl")[: args.n]
    loaded = load_model(ModelConfig(name=args.model), train=False)
    model, tok = loaded.model.eval(), loaded.tokenizer
    prompts = [render_prompt(tok, r, True) for r in rows]
    letters, _ = letter_token_ids(tok, prompts[0], True)
    k = len(rows[0]["options"])
    out = {}

    def lm():
        feats, logits = [], []
        with torch.no_grad():
            for i in range(0, len(prompts), args.batch_size):
                f, lg = forward_last(model, tok, prompts[i : i + args.batch_size], True, letters[:k])
                feats.append(f)
                logits.append(lg)
        out["features"], out["logits"] = torch.cat(feats), torch.cat(logits)

    lm()
    calibrator = Thermometer(out["features"].shape[1], args.hidden).eval()

    def calibrate():
        with torch.no_grad():
            inv_t = dataset_inverse_temperature(calibrator, out["features"])
            torch.softmax(out["logits"].double() * inv_t, -1)

    t_lm, t_cal = best_of(lm, args.repeats), best_of(calibrate, args.repeats * 10)
    print(f"{args.model}, task {args.task}: {len(prompts)} prompts, batch {args.batch_size}, "
          f"torch threads {torch.get_num_threads()}, best of {args.repeats}")
    print(f"  LM forward (features + option logits)   {t_lm * 1e3:10.2f} ms")
    print(f"  Thermometer (h={args.hidden}) + scaling        {t_cal * 1e3:10.3f} ms")
    print(f"  calibrator cost / LM forward            {100 * t_cal / t_lm:10.3f} %")
    print("reproduce: python " + " ".join(sys.argv))


if __name__ == "__main__":
    main()
