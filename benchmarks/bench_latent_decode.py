"""Decoding speed of ``mmthink.ops.latent.latent_generate`` against HF ``generate`` and a one-row loop.

Same tiny Qwen2.5-VL model (tiny-qwen2.5-vl with the latent tokens), same VSP prompts with images,
same output length (EOS disabled so every row decodes exactly --new-tokens tokens), measured in one run:

- latent decoding, batch 1 and batch B: every row opens a latent block (the prompt ends with
  <|latent_start|>), feeds --latent hidden states, then decodes text;
- HF ``generate`` (plain text, greedy) at batch 1 and B: the speed a text-only VLM decodes at;
- the official approach: the latent loop run one row at a time over the B rows.

Usage: python benchmarks/bench_latent_decode.py [--batch 16] [--new-tokens 64] [--latent 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from common import best_of

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--latent", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()

    import torch

    from mmthink.methods.mirage.config import LATENT_TOKENS
    from mmthink.methods.mirage.data import ImageRoots, open_image, prompt_text
    from mmthink.models.config import ModelConfig
    from mmthink.models.loading import load_model
    from mmthink.ops.latent import LatentTokens, latent_generate
    from mmthink.tasks import vsp

    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_model(ModelConfig(name="tiny-qwen2.5-vl", special_tokens=LATENT_TOKENS), train=False)
    model, tok, proc = loaded.model.eval(), loaded.tokenizer, loaded.image_processor
    lt = LatentTokens.from_tokenizer(tok)
    tok.padding_side = "left"
    with tempfile.TemporaryDirectory() as tmp:
        path = vsp.generate(Path(tmp), "planning", {3: args.batch // 2, 4: args.batch - args.batch // 2}, seed=0)
        import json

        rows = [json.loads(line) for line in path.read_text().splitlines()][: args.batch]
        images = [open_image(ImageRoots(path), r["image_input"]) for r in rows]

    def inputs(idx, latent: bool):
        pix = proc(images=[images[i] for i in idx], return_tensors="pt")
        counts = (pix["image_grid_thw"].prod(-1) // proc.merge_size**2).tolist()
        texts = [prompt_text(tok, rows[i]["text_input"], n) + ("<|latent_start|>" if latent else "")
                 for i, n in zip(idx, counts)]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        vis = dict(pixel_values=pix["pixel_values"], image_grid_thw=pix["image_grid_thw"],
                   mm_token_type_ids=(enc["input_ids"] == model.config.image_token_id).int())
        return enc, vis

    def ours(idx):
        enc, vis = inputs(idx, latent=True)
        with torch.no_grad():
            # the text budget leaves out the latent block (its pads and <|latent_end|>): new_tokens steps in all
            out = latent_generate(model, enc["input_ids"], enc["attention_mask"], lt, args.new_tokens - args.latent - 1,
                                  [], tok.pad_token_id, max_latent=args.latent, **vis)
        assert out.sequences.shape[1] == args.new_tokens and (out.latent_steps == args.latent).all()

    def hf(idx):
        enc, vis = inputs(idx, latent=False)
        with torch.no_grad():
            out = model.generate(**enc, **vis, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                                 do_sample=False, pad_token_id=tok.pad_token_id)
        assert out.shape[1] - enc["input_ids"].shape[1] == args.new_tokens

    def one_row_loop(idx):
        for i in idx:
            ours([i])

    everything = list(range(args.batch))
    ours([0]), hf([0])  # warm-up
    t = {
        "latent, batch 1": best_of(lambda: ours([0]), args.repeats),
        f"latent, batch {args.batch}": best_of(lambda: ours(everything), args.repeats),
        "HF generate, batch 1": best_of(lambda: hf([0]), args.repeats),
        f"HF generate, batch {args.batch}": best_of(lambda: hf(everything), args.repeats),
        f"latent one row at a time, {args.batch} rows": best_of(lambda: one_row_loop(everything), args.repeats),
    }
    tokens = {k: args.new_tokens * (1 if k.endswith("batch 1") else args.batch) for k in t}
    rate = {k: tokens[k] / t[k] for k in t}
    print(f"tiny-qwen2.5-vl, {args.new_tokens} new tokens per row ({args.latent} latent), best of {args.repeats}, "
          f"torch threads {torch.get_num_threads()}")
    for k in t:
        print(f"  {k:<40} {t[k]:8.3f} s  {rate[k]:9.1f} tokens/s")
    b = args.batch
    print(f"  latent / HF generate, batch 1              {rate['latent, batch 1'] / rate['HF generate, batch 1']:.2f}x")
    print(f"  latent / HF generate, batch {b:<14} {rate[f'latent, batch {b}'] / rate[f'HF generate, batch {b}']:.2f}x")
    print(f"  batch {b} / one-row loop                    "
          f"{rate[f'latent, batch {b}'] / rate[f'latent one row at a time, {b} rows']:.2f}x")
    print("reproduce: python " + " ".join(sys.argv))


if __name__ == "__main__":
    main()
