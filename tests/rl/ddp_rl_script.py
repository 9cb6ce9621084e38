"""Run by tests/rl/test_rl_ddp.py under `accelerate launch` with two CPU processes."""

import json
import sys
from pathlib import Path

import torch

from mmthink.models.config import ModelConfig
from mmthink.models.loading import load_model
from mmthink.rl.config import RLConfig
from mmthink.rl.rewards import RewardSpec, register_reward
from mmthink.rl.trainer import RLTask, rl_runner_config, train_rl
from mmthink.runner.config import LoggingConfig, OptimConfig
from mmthink.runner.loop import make_accelerator

register_reward("count_a")(lambda p, c, row: c.count("a") / max(len(c), 1))
out, estimator = Path(sys.argv[1]), sys.argv[2]
loaded = load_model(ModelConfig(name="tiny-llama"))
tok = loaded.tokenizer
cfg = RLConfig(steps=2, prompts_per_step=4, micro_batch_size=4, rewards=[RewardSpec("count_a")],
               optim=OptimConfig(lr=3e-3, scheduler="constant"), critic_optim=OptimConfig(lr=1e-3, scheduler="constant"))
cfg.rollout.group_size, cfg.rollout.max_new_tokens = 4, 8
cfg.advantage.estimator = estimator
acc = make_accelerator(rl_runner_config(cfg))
task = RLTask([{"q": f"say {i}"} for i in range(8)],
              lambda r: tok.apply_chat_template([{"role": "user", "content": r["q"]}], tokenize=False,
                                                add_generation_prompt=True))
train_rl(loaded.model, tok, task, cfg, LoggingConfig(progress="none"), out, seed=0, accelerator=acc)
# Every process must hold the same weights after the synchronised updates.
flat = torch.cat([p.detach().flatten() for p in loaded.model.parameters()])
checks = acc.gather(torch.stack([flat.sum(), flat.abs().sum(), flat[::97].pow(2).sum()])[None]).reshape(-1, 3)
if acc.is_main_process:
    (out / "ddp_check.json").write_text(json.dumps({"world": acc.num_processes, "checks": checks.tolist()}))
acc.wait_for_everyone()
acc.end_training()  # tear the gloo group down before exit: left to the interpreter it can abort at shutdown
