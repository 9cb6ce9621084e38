"""Satori (arXiv 2502.02508): Chain-of-Action-Thought reasoning — meta-action tokens to continue,
reflect and explore — learned by format tuning, then RL with Restart-and-Explore.

Flow (``pipeline.train``): math rows (a file, or generated) → the model with the meta tokens →
stage ``format`` (SFT on synthetic COAT demonstrations) → stage ``rl`` (PPO or GRPO on the shared
loop, with restart states mixed into the prompts) → round 2 when asked: stage ``distill`` (the RL
policy's correct solutions fine-tuned into the base) → stage ``rl2`` → ``model/`` and the evaluation.
``mmthink data math`` and ``mmthink data coat`` write the data.

Paper term → recipe field → code:
  meta-action tokens <|continue|> <|reflect|> <|explore|>       model.special_tokens   config.META_TOKENS, coat.hide_meta
  COAT demonstrations (continue, reflect, explore)              format.demos, format.mix   coat.coat_demo, coat_sft_rows
  plain chain-of-thought baseline                                format.demos           coat.cot_sft_rows
  format tuning (stage 1)                                        format.*               runner.sft.sft_task, runner.loop.fit
  prompt in the chat template                                    —                      tasks.math.prompt, evaluate.chat_prompt
  RL (stage 2): PPO with GAE, γ = 1, λ = 0.95                    rl.*                   rl.trainer.train_rl, rl.advantages.gae
  r = σ(ORM) + (correct − 1) + reflection bonus, clipped         reward.outcome_model, reward.reflect_bonus, reward.clip   rewards.satori_reward, reflection_bonus, models.reward.OutcomeRewardModel
  correct: the last boxed answer of prefix + continuation        —                      tasks.grading.grade, pipeline.SatoriRL.reward
  RAE buffers of the policy's own trajectories                   rae.enabled, rae.buffer_size   rae.RestartBuffers, pipeline.SatoriRL.observe
  restart state: T ≤ max_back steps cut, <|reflect|> appended    rae.max_back           rae.restart_prefix, coat.split_steps
  restarts mixed into each step's prompts                        rae.ratio              rae.mix_restarts, pipeline.SatoriRL.select
  evaluation: accuracy, reflect rate, reflection-fix rate        eval.*                 evaluate.evaluate_math, wrong_prefix_restarts
  round 2: the RL policy's correct solutions distilled into the base   distill.*, stages   distill.sample_solutions, correct_solutions, runner.checkpoint.copy_weights
  round 2: RL again on the distilled model                       stages                 pipeline.train
  stages in output_dir/<stage>, run after the last finished one  stages, *.resume       pipeline.train, runner.session.run_stages
"""
