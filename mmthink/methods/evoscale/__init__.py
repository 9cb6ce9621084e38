"""EvoScale (Satori-SWE, arXiv 2505.23604): evolutionary test-time scaling. ``mmthink eval evoscale``:
the inference loop with best-of-N and greedy baselines; ``mmthink train evoscale``: classical SFT,
mutation SFT and RL with the improvement reward (``train.py``).

Paper term → recipe field → code:
  budget N = M x T samples                       evo.m, evo.t          search.evolve
  conditioning set E^t: top-K of iteration t     evo.k                 search.top_k, search.conditioning_prompt
  mutation: y ~ pi(. | x, E^t)                   sampler.temperature   search.evolve
  score R (tests / constraints)                  evo.scorer            tasks.scorer
  R from a reward model                          evo.reward_model      pipeline._ranker, models.reward.OutcomeRewardModel
  R from the model itself: P(Yes | judge prompt)  evo.judge_question    pipeline._ranker, ops.judge.judge
  true score of the pick among the first n       evo.scorer            search.selected_curve
  self-evolve (no scorer: random K, last sample) evo.scorer            search.evolve, search.final_answers
  best-of-N baseline at equal budget             eval.baselines        search.best_of_n
  samples to reach a target score                eval.baselines        search.samples_to_reach
  samples until the mean best@n reaches a target  eval.baselines        search.samples_to_mean
  the loop per request of mmthink serve          evo.*                 serving.EvoScaleMode
  classical SFT: x -> y                          sft.optim, sft.runner  train.train
  mutation SFT: (x, E) -> better y, E from SFT   mutation.problems     train.conditioned_rows
  RL reward R(x,y) - R(x,y') - lambda F(y)       shaping.baseline, shaping.format_penalty  rewards.shaped_reward
"""
