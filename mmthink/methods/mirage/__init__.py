"""Mirage (arXiv 2506.17218): a VLM reasons with latent visual tokens — hidden states it feeds back to
itself in place of drawing a helper image — trained in three stages on Visual Spatial Planning (and, for the tiny VLM, a perception stage 0 first).

Flow (``pipeline.train``): read VSP rows → load the VLM, add the latent tokens, freeze the vision
tower → encode rows (image features, pooled helper-image targets) → stage 0 (ours) → stage 1 → stage 2 → stage 3
(GRPO) → ``model/`` and the per-grid-size evaluation. ``mmthink data vsp`` writes the data.

Paper term → recipe field → code:
  latent tokens <|latent_start|> <|latent_pad|> <|latent_end|>   model.special_tokens   config.LATENT_TOKENS, ops.latent.LatentTokens
  K latent tokens per helper image (K = 0: text-only baseline)   latent.k               data.encode_rows, collate
  latent targets: helper-image vision tokens, K chunks mean-pooled   latent.k               losses.pooled_latent_targets
  (ours) stage 0, perception: image → the map in words, CE        stages, stage0.*       tasks.vsp.describe, pipeline.train
  (ours) the tiny tower's 2-D position code (config.json: vision_position)   model.name   models.vision_position.install
  stage 1, L = γ·CE + (1 − mean_p cos(h_{p−1}, e_p))             latent.gamma, stage1.*   stages.stage1, losses.latent_cosine_per_example, stage1_loss
  stage 2: slots filled by the recurrence, CE only               stage2.*               stages.stage2
  inference: hidden state fed back until <|latent_end|>          latent.max_len, latent.min_len, latent.stop   ops.latent.latent_generate
  answer parsing: official (upper-case, keep U/D/L/R) or strict   eval.answer_rule       tasks.vsp.parse_actions
  images relative to the JSONL, its ancestors, or image_root      data.image_root        data.ImageRoots
  the map-blind baseline: blank images                           data.blank_images      data.open_image
  ablations: latents → zeros, noise, ground-truth targets        latent.mode            ops.latent._latent_input
  VSP rows and evaluator (moves U/D/L/R simulated on the map)    data.*, eval.*         tasks.vsp.score_row, evaluate.evaluate_vsp
  stage 3: GRPO over latent rollouts (no official code)          stage3.*               grpo.LatentPolicy.rollout, rl.trainer.train_rl
  stage-3 log-probs: the latent recurrence replayed with grads   stage3.micro_batch_size   grpo.LatentPolicy.logits
  stage-3 rewards: format and accuracy in {0, 1}                 stage3.rewards         grpo.vsp_format, vsp_accuracy
  stages in output_dir/stageN, a finished one loaded             stages, stage1.runner.resume   pipeline.train, runner.session.run_stages
"""
