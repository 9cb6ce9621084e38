"""Tango (arXiv 2505.15034): a generator and a generative step-level verifier co-trained by RL.
``mmthink train tango``: format tuning of the generator, then the interleaved co-training
(``cotrain.py``); ``mmthink eval tango``: generator accuracy and verifier F1 on step-labelled rows.

Paper term → recipe field → code:
  generator format <think><step>…</step></think><answer>\\boxed{}   model, format.*        formats.solution_text, data.format_rows
  verifier format <step_verification>…<final_verification>          verifier_model        formats.parse_judgment, formats.verifier_prompt
  schedule: warm-ups, then 3 generator : 1 verifier steps           schedule.*            cotrain.mode_at
  outcome reward: truth (and the verifier's verdict), + format      generator_reward.*    cotrain.CoTrainer.generator_step
  process reward ±1/S at each step's end token, S verdicts only     generator_reward.verifier_rollouts  rewards.process_rewards, rewards.step_end_tokens
  A = (1 − α) A_out + α A_proc (z-scored, return-to-go)             alpha.*               rewards.mixed_advantage, rewards.alpha_at
  verifier reward 1[verdict == truth] + 0.8 format score            verifier_reward.*     rewards.verifier_reward, formats.verifier_format_score
  class-balancing weights 1/√count (running, decay 0.8)             verifier_reward.reweight, verifier_reward.decay  rewards.ClassWeights
  GRPO for both policies (n = 5, clip, k3 KL, entropy)              generator.*, verifier.*  mmthink.rl.trainer.Learner
  outcome-only GRPO baseline                                        schedule.verifier     cotrain.cotrain
  ProcessBench F1 on corrupted-step rows                            eval.step_rows        data.step_labelled, evaluate.verifier_scores
"""
