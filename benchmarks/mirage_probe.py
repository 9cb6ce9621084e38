"""The search behind the tiny Mirage recipe: train the tiny VLM (text-only, no latent slots) on VSP rows
with a chosen answer format, then report exact match, start / goal accuracy of a map description,
and plan accuracy on the test rows (docs/results.md, "What the toy needs").

Formats: plan (the BFS plan, as the recipe), percept (the map in words, as stage 0: start r c, goal
r c, holes ...), percept_plan (the words, then the plan: a text chain of thought). A plain AdamW loop
(warmup 20, cosine, clip 1.0, weight decay 0.01) over cached features, one seed per call.

Usage: python benchmarks/mirage_probe.py --data data/vsp/tiny --fmt plan --steps 400 --bs 64 [--seed 1]
       [--pscale 8] [--train-tower] [--blank]
"""
import argparse, json, random, time, math
from pathlib import Path
import torch
from mmthink.methods.mirage.config import LATENT_TOKENS
from mmthink.methods.mirage.data import ImageRoots, encode_rows, collate
from mmthink.methods.mirage import stages
from mmthink.methods.mirage.evaluate import generate_answers
from mmthink.models.config import ModelConfig
from mmthink.models.loading import load_model
from mmthink.ops.latent import LatentTokens
from mmthink.tasks import vsp

ap = argparse.ArgumentParser()
ap.add_argument("--data", default="data/vsp/tiny")
ap.add_argument("--fmt", default="plan")  # plan | percept | percept_plan
ap.add_argument("--steps", type=int, default=300)
ap.add_argument("--bs", type=int, default=32)
ap.add_argument("--lr", type=float, default=2e-3)
ap.add_argument("--blank", action="store_true")
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--init", default="tiny-qwen2.5-vl")
ap.add_argument("--save", default=None)
ap.add_argument("--pscale", type=float, default=None, help="norm of the position code (preset: 8; 0: none)")
ap.add_argument("--train-tower", action="store_true")
args = ap.parse_args()
torch.manual_seed(args.seed)

percept = vsp.describe
def fmt(r):
    plan = r["text_output"]
    if args.fmt == "plan": return plan
    if args.fmt == "percept": return percept(r["map_desc"])
    return percept(r["map_desc"]) + ". " + plan

d = Path(args.data)
rows = [json.loads(l) for l in (d / "train.jsonl").read_text().splitlines()]
test = [json.loads(l) for l in (d / "test.jsonl").read_text().splitlines()]
for r in rows: r["text_output"] = fmt(r)
if args.blank:
    from PIL import Image
    n = len(rows[0]["map_desc"]); Image.new("RGB", (28*n, 28*n), (128,128,128)).save(d / "blank.png")
    for r in rows + test: r["image_input"] = "blank.png"
loaded = load_model(ModelConfig(name=args.init, special_tokens=LATENT_TOKENS), train=True)
model, tok, proc = loaded.model, loaded.tokenizer, loaded.image_processor
if args.pscale is not None: model.config.vision_position_scale = args.pscale
lt = LatentTokens.from_tokenizer(tok)
t0 = time.time()
ex = encode_rows(rows, ImageRoots(d / "train.jsonl"), model, tok, proc, 0, (lt.start, lt.pad, lt.end), 512)
model.model.visual.requires_grad_(args.train_tower)
if args.train_tower:
    from mmthink.methods.mirage.data import open_image
    roots = ImageRoots(d / "train.jsonl")
    pix = [proc(images=[open_image(roots, r["image_input"])], return_tensors="pt") for r in rows]
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.01)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1, (s+1)/20) * 0.5 * (1 + math.cos(math.pi * s / args.steps)))
rng = random.Random(args.seed)
model.train()
for step in range(args.steps):
    idx = rng.sample(range(len(ex)), args.bs)
    batch = collate([ex[i] for i in idx], tok.pad_token_id, 0, lt.pad)
    if args.train_tower:
        pv = torch.cat([pix[i]["pixel_values"] for i in idx]); grid = torch.cat([pix[i]["image_grid_thw"] for i in idx])
        feats = model.model.get_image_features(pv, grid).pooler_output
        batch["image_feats"] = torch.stack(list(feats))
    out = stages.stage1(model, batch, k=0, gamma=0.1, image_token_id=model.config.image_token_id)
    loss = out.loss_sum / out.num_items
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step(); sched.step()
    if step % 50 == 0 or step == args.steps - 1:
        print(f"step {step} loss {loss.item():.4f} {time.time()-t0:.0f}s", flush=True)
model.eval()
answers, _ = generate_answers(model, tok, proc, test, ImageRoots(d / "test.jsonl"), lt, 0, 48, 50, 8)
exact = sum(a.strip() == fmt(r).strip() for a, r in zip(answers, test)) / len(test)
acc = vsp.score_predictions(test, answers)["overall"]
def fields(a, r):
    t = percept(r["map_desc"]).split(", ")
    p = a.split(", ")
    return [int(len(p) > i and p[i] == t[i]) for i in range(2)]
f = [fields(a, r) for a, r in zip(answers, test)]
print("start_acc", sum(x[0] for x in f)/len(f), "goal_acc", sum(x[1] for x in f)/len(f))
print(json.dumps({"fmt": args.fmt, "steps": args.steps, "lr": args.lr, "exact": exact, "plan_acc": acc["accuracy"],
                  "invalid": acc["invalid_rate"], "s": round(time.time()-t0), "sample": answers[:3]}))
if args.save: model.save_pretrained(args.save); tok.save_pretrained(args.save); proc.save_pretrained(args.save)
