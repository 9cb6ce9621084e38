"""The prepared GPU check: what mmthink does on a real accelerator, in a few minutes, into one JSON.

Parts, in order (each records ``status`` ok / skipped / failed and its figures; a part that fails
does not stop the others; parts are skipped once ``--budget-s`` is spent):

1. ``mirage_stage1``: bf16 AdamW steps of Mirage's stage-1 loss (images, latent targets) on a
   Qwen2.5-VL-7B model built from the shipped config with ``--layers`` of its 28 decoder layers
   (full bf16 training of all 7B does not fit one GPU); tokens/s and MFU = 6 · trainable parameters ·
   tokens / (step time · peak bf16 FLOP/s), attention FLOPs left out (short sequences).
2. ``latent_decode``: latent decoding tokens/s at ``--batch`` prompts against HF ``generate`` (text
   only, greedy) on the same model and output length.
3. ``qlora_step``: one 4-bit QLoRA step of the Qwen2.5-Math-7B widths (``--qlora-layers`` decoder
   layers, 28 = the full model) with the peak memory; needs bitsandbytes.
4. ``sft_smollm2`` / ``rl_smollm2``: the SFT and RL step benchmarks on SmolLM2-135M in bf16.
5. ``serve_smollm2``: ``mmthink serve`` batched against one row at a time (16 clients, SmolLM2-135M).
6. ``vca_tiny``: ``mmthink video-explore`` through the local VLM path (tiny Qwen2.5-VL, a folder of frames).
7. ``pytest_gpu``: the test suite's ``gpu`` marker.

``--dry-run`` runs every part with tiny shapes on the CPU (CI does, so the script cannot rot).
Usage: benchmarks/gpu/check.sh [--dry-run] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ[_var] = "1"

PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12}  # dense, no sparsity


def _device_info(torch) -> dict:
    if not torch.cuda.is_available():
        return {"device": "cpu", "peak_bf16_flops": None}
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    return {"device": name, "peak_bf16_flops": peak, "memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)}


def _sync(torch):
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _vl_model(args, torch, device):
    from mmthink.methods.mirage.config import LATENT_TOKENS
    from mmthink.models.loading import add_special_tokens
    from mmthink.models.paper import paper_model, shape_model
    from mmthink.models.tokenizer import load_tiny_tokenizer
    from mmthink.runner.dryrun import vision_token_ids

    tok = load_tiny_tokenizer()
    name = "tiny-qwen2.5-vl" if args.dry_run else "Qwen/Qwen2.5-VL-7B-Instruct"
    model = shape_model(paper_model(name).config, layers=args.layers, token_ids=vision_token_ids(tok))
    add_special_tokens(model, tok, LATENT_TOKENS)
    model.model.visual.requires_grad_(False)
    return model.to(device=device, dtype=torch.bfloat16), tok


def _vsp_rows(tmp: Path, n: int):
    from mmthink.data.rows import load_rows
    from mmthink.methods.mirage.data import ImageRoots
    from mmthink.tasks import vsp

    train, _ = vsp.generate_split(tmp, "planning", 0, {3: n // 2, 4: n - n // 2}, {3: 1})
    return list(load_rows(train, vsp.validate_vsp_row)), ImageRoots(train)


def mirage_stage1(args, torch, device, info) -> dict:
    from functools import partial

    from mmthink.methods.mirage import stages
    from mmthink.methods.mirage.data import collate, encode_rows
    from mmthink.models.paper import count_parameters
    from mmthink.models.presets import tiny_image_processor
    from mmthink.ops.latent import LatentTokens

    model, tok = _vl_model(args, torch, device)
    proc, k = tiny_image_processor(), 4
    latent = LatentTokens.from_tokenizer(tok)
    with tempfile.TemporaryDirectory() as tmp:
        rows, root = _vsp_rows(Path(tmp), args.batch)
        examples = encode_rows(rows, root, model, tok, proc, k, (latent.start, latent.pad, latent.end), 2048)
    batch = {key: (v.to(device) if hasattr(v, "to") else v) for key, v in
             collate(examples[: args.micro], pad_id=tok.pad_token_id, k=k, latent_pad_id=latent.pad).items()}
    loss_fn = partial(stages.stage1, k=k, gamma=1.0, image_token_id=model.config.image_token_id)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    model.train()
    times = []
    for i in range(args.steps + 1):
        _sync(torch)
        t0 = time.perf_counter()
        out = loss_fn(model, batch)
        (out.loss_sum / out.num_items).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(torch)
        if i:  # the first step compiles kernels and allocates
            times.append(time.perf_counter() - t0)
    step = sorted(times)[len(times) // 2]
    tokens = int(batch["attention_mask"].sum())
    trainable = count_parameters(model)[1]
    flops = 6 * trainable * tokens / step
    peak = info["peak_bf16_flops"]
    return {"layers": args.layers, "micro_batch": args.micro, "tokens_per_step": tokens, "trainable_parameters": trainable,
            "median_step_s": round(step, 4), "tokens_per_s": round(tokens / step, 1),
            "mfu": round(flops / peak, 4) if peak else None, "loss": round(float(out.loss_sum.detach() / out.num_items), 4)}


def latent_decode(args, torch, device, info) -> dict:
    from mmthink.methods.mirage.data import open_image, prompt_text
    from mmthink.models.presets import tiny_image_processor
    from mmthink.models.tokenizer import left_padded
    from mmthink.ops.latent import LatentTokens, latent_generate

    model, tok = _vl_model(args, torch, device)
    model.eval()
    proc, latent = tiny_image_processor(), LatentTokens.from_tokenizer(tok)
    with tempfile.TemporaryDirectory() as tmp:
        rows, root = _vsp_rows(Path(tmp), args.batch)
        images = [open_image(root, r["image_input"]) for r in rows]
    pix = proc(images=images, return_tensors="pt")
    counts = (pix["image_grid_thw"].prod(-1) // proc.merge_size**2).tolist()
    texts = [prompt_text(tok, r["text_input"], n) for r, n in zip(rows, counts)]
    with left_padded(tok):
        enc = tok([t + "<|latent_start|>" for t in texts], return_tensors="pt", padding=True, add_special_tokens=False)
        plain = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    vision = {"pixel_values": pix["pixel_values"].to(device, torch.bfloat16), "image_grid_thw": pix["image_grid_thw"].to(device)}
    n_new = args.new_tokens

    def ours():
        return latent_generate(model, enc["input_ids"].to(device), enc["attention_mask"].to(device), latent, n_new, [],
                               tok.pad_token_id, max_latent=4, min_latent=4,
                               mm_token_type_ids=(enc["input_ids"] == model.config.image_token_id).int().to(device), **vision)

    def hf():
        return model.generate(input_ids=plain["input_ids"].to(device), attention_mask=plain["attention_mask"].to(device),
                              max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False,
                              pad_token_id=tok.pad_token_id, **vision)

    out = {}
    with torch.no_grad():
        for name, fn in (("latent", ours), ("hf_generate", hf)):
            fn()  # warm-up
            _sync(torch)
            t0 = time.perf_counter()
            res = fn()
            _sync(torch)
            # tokens per row as decoded: ours adds the latent block (4 pads and its end) to n_new text tokens
            steps = res.sequences.shape[1] if name == "latent" else res.shape[1] - plain["input_ids"].shape[1]
            out[f"{name}_tokens_per_s"] = round(len(rows) * steps / (time.perf_counter() - t0), 1)
    out.update(batch=len(rows), new_tokens=n_new, ratio=round(out["latent_tokens_per_s"] / out["hf_generate_tokens_per_s"], 3))
    return out


def qlora_step(args, torch, device, info) -> dict:
    from mmthink.models.config import LoraConfig, ModelConfig, QuantizationConfig
    from mmthink.models.loading import bnb_problem, load_model
    from mmthink.models.paper import paper_model, shape_model
    from mmthink.models.tokenizer import load_tiny_tokenizer

    problem = bnb_problem()
    if problem:
        return {"status": "skipped", "why": problem}
    name = "tiny-llama" if args.dry_run else "Qwen/Qwen2.5-Math-7B"
    tok = load_tiny_tokenizer()
    with tempfile.TemporaryDirectory(dir=args.scratch) as tmp:
        shape_model(paper_model(name).config, layers=args.qlora_layers).save_pretrained(tmp)
        tok.save_pretrained(tmp)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        cfg = ModelConfig(name=tmp, dtype="bfloat16", quantization=QuantizationConfig(bits=4, compute_dtype="bfloat16"),
                          lora=LoraConfig(enabled=True, r=16, alpha=32), gradient_checkpointing=True)
        model = load_model(cfg).model
    length = min(512, model.config.max_position_embeddings)
    ids = torch.randint(10, min(1000, len(tok)), (args.micro, length), device=model.device)
    model.train()
    t0 = time.perf_counter()
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    _sync(torch)
    out = {"layers": args.qlora_layers, "step_s": round(time.perf_counter() - t0, 3), "loss": round(float(loss.detach()), 4)}
    if torch.cuda.is_available():
        out["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


def _command(cmd: list, timeout: int) -> tuple[int, str]:
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    return res.returncode, (res.stdout + res.stderr)[-2000:]


def sft_smollm2(args, torch, device, info) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        recipe = "recipes/tiny/sft.yaml" if args.dry_run else "recipes/sft.yaml"
        steps = 2 if args.dry_run else 30
        dtype = "float32" if args.dry_run else "bfloat16"
        rc, tail = _command([sys.executable, "-m", "mmthink.cli", "train", "sft", "--recipe", recipe, f"output_dir={tmp}",
                             f"runner.max_steps={steps}", f"model.dtype={dtype}", "data.eval_file=null",
                             "runner.save_every=0", "logging.progress=none"], 600)
        if rc != 0:
            return {"status": "failed", "tail": tail}
        rows = [json.loads(x) for x in (Path(tmp) / "metrics.jsonl").read_text().splitlines() if x]
    rates = [r["items_per_s"] for r in rows if "items_per_s" in r][1:] or [rows[-1]["items_per_s"]]
    return {"recipe": recipe, "dtype": dtype, "steps": steps, "target_tokens_per_s": round(sorted(rates)[len(rates) // 2], 1),
            "final_loss": round(rows[-1].get("loss", float("nan")), 4)}


def rl_smollm2(args, torch, device, info) -> dict:
    model = "tiny-llama" if args.dry_run else "smollm2-135m-instruct"
    cmd = [sys.executable, "benchmarks/bench_rl_step.py", "--model", model, "--only", "mmthink",
           "--steps", "1" if args.dry_run else "5", "--warmup", "0" if args.dry_run else "1",
           "--length", "8" if args.dry_run else "64", "--rounds", "1"]
    rc, tail = _command(cmd, 600)
    return {"status": "ok" if rc == 0 else "failed", "model": model, "tail": tail[-600:]}


def tango_smollm2(args, torch, device, info) -> dict:
    """A few co-training steps of Tango (generator + verifier in one process) on the device."""
    model = "tiny-llama" if args.dry_run else "smollm2-135m-instruct"
    steps, tokens = (3, 4) if args.dry_run else (8, 96)
    with tempfile.TemporaryDirectory() as tmp:
        rc, tail = _command([sys.executable, "-m", "mmthink.cli", "train", "tango", "--recipe", "recipes/tiny/tango.yaml",
                             f"output_dir={tmp}", f"model.name={model}", f"verifier_model.name={model}",
                             "stages=[rl]", f"schedule.steps={steps}", "schedule.verifier_warmup=1",
                             f"generator.rollout.max_new_tokens={tokens}", f"verifier.rollout.max_new_tokens={tokens}",
                             "data.n_train=32", "data.n_eval=4", "eval.limit=2", "eval.step_rows=2",
                             "logging.progress=none"], 600)
        if rc != 0:
            return {"status": "failed", "tail": tail}
        rows = [json.loads(x) for x in (Path(tmp) / "rl" / "metrics.jsonl").read_text().splitlines() if x]
    times = [r["step_s"] for r in rows if "step_s" in r]
    return {"model": model, "steps": steps, "max_new_tokens": tokens,
            "median_step_s": round(sorted(times)[len(times) // 2], 2)}


def serve_smollm2(args, torch, device, info) -> dict:
    """mmthink serve's continuous batching against one row at a time (benchmarks/bench_serve.py)."""
    model = "tiny-llama" if args.dry_run else "smollm2-135m-instruct"
    size = ["--requests", "8", "--new-tokens", "4", "--clients", "4"] if args.dry_run else \
        ["--requests", "128", "--new-tokens", "64", "--clients", "16"]
    rc, tail = _command([sys.executable, "benchmarks/bench_serve.py", "--model", model, "--device", device, *size], 600)
    lines = [line for line in tail.splitlines() if line.startswith("RESULT ")]
    if rc != 0 or not lines:
        return {"status": "failed", "tail": tail[-600:]}
    result = json.loads(lines[-1][len("RESULT "):])
    return {"model": model, "ratio_requests_per_s": round(result["ratio_requests_per_s"], 2),
            "batched_tokens_per_s": round(result["batched"]["tokens_per_s"], 1),
            "one_at_a_time_tokens_per_s": round(result["one_at_a_time"]["tokens_per_s"], 1),
            "batched_ttft_p50_s": round(result["batched"]["ttft_p50_s"], 3)}


def vca_tiny(args, torch, device, info) -> dict:
    """VCA's calls through the local VLM path on the device: video-explore with the tiny Qwen2.5-VL over a
    folder of generated needle frames (PNG: the machine has no PyAV wheel)."""
    import random

    from mmthink.tasks.needle import layout, render

    truth = layout(random.Random(0), 120.0, 4, 3.0)
    with tempfile.TemporaryDirectory() as tmp:
        frames = Path(tmp) / "frames"
        frames.mkdir()
        for t in range(120):
            render(truth, float(t), 96).save(frames / f"{t:04d}.png")
        tokens = "8" if args.dry_run else "160"
        t0 = time.monotonic()
        rc, tail = _command([sys.executable, "-m", "mmthink.cli", "video-explore", str(frames), "-q",
                             "Which digit appears?", "--options", "1,2,3,4", "--recipe", "tiny/vca", "--out",
                             str(Path(tmp) / "out"), f"backend.device={device}", f"backend.max_new_tokens={tokens}",
                             "folder_fps=1"], 600)
        seconds = time.monotonic() - t0
        if rc != 0:
            return {"status": "failed", "tail": tail}
        result = json.loads((Path(tmp) / "out" / "explore.json").read_text())["result"]
    return {"model": "tiny-qwen2.5-vl", "max_new_tokens": int(tokens), "frames_used": result["frames_used"],
            "calls": result["calls"], "malformed": result["malformed"], "command_s": round(seconds, 1)}


def pytest_gpu(args, torch, device, info) -> dict:
    rc, tail = _command([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "tests"], 600)
    return {"status": "ok" if rc == 0 else "failed", "summary": tail.strip().splitlines()[-1] if tail.strip() else ""}


PARTS = [mirage_stage1, latent_decode, qlora_step, sft_smollm2, rl_smollm2, tango_smollm2, serve_smollm2, vca_tiny,
         pytest_gpu]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="tiny shapes on the CPU (what CI runs)")
    ap.add_argument("--out", default=None, help="JSON file (default: $OUT/gpu_check.json, else runs/gpu_check.json)")
    ap.add_argument("--layers", type=int, default=4, help="decoder layers of the 7B model in parts 1-2")
    ap.add_argument("--qlora-layers", type=int, default=28, help="decoder layers of the QLoRA model (28: all of 7B)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--micro", type=int, default=4, help="sequences per training step")
    ap.add_argument("--batch", type=int, default=32, help="prompts decoded together")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--budget-s", type=float, default=300.0, help="parts are skipped once this is spent")
    ap.add_argument("--scratch", default=None, help="folder for the QLoRA model's temporary checkpoint")
    ap.add_argument("--only", nargs="*", default=None, help="run only these parts")
    args = ap.parse_args()
    if args.dry_run:
        args.layers, args.qlora_layers, args.steps, args.micro, args.batch, args.new_tokens = 2, 2, 1, 2, 2, 4

    import torch

    info = _device_info(torch)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    report = {"date": time.strftime("%Y-%m-%d"), "dry_run": args.dry_run, **info, "torch": torch.__version__,
              "transformers": __import__("transformers").__version__, "parts": {}}
    t_start = time.monotonic()
    for part in PARTS:
        name = part.__name__
        if args.only and name not in args.only:
            continue
        if time.monotonic() - t_start > args.budget_s:
            report["parts"][name] = {"status": "skipped", "why": f"the {args.budget_s:g} s budget is spent"}
            continue
        t0 = time.monotonic()
        try:
            result = part(args, torch, device, info)
            result.setdefault("status", "ok")
        except Exception as e:  # noqa: BLE001 - one part's failure is a figure, not the end of the check
            result = {"status": "failed", "error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
        result["seconds"] = round(time.monotonic() - t0, 1)
        report["parts"][name] = result
        print(f"[gpu check] {name}: {result['status']} ({result['seconds']} s)", file=sys.stderr, flush=True)
        if device == "cuda":
            torch.cuda.empty_cache()
    out = Path(args.out or (Path(os.environ["OUT"]) / "gpu_check.json" if os.environ.get("OUT") else REPO / "runs" / "gpu_check.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0 if all(p["status"] != "failed" for p in report["parts"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
