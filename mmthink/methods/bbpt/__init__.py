"""Reliable gradient-free and likelihood-free prompt tuning (arXiv 2305.00593): soft prompts p = A·z in a
random low-dimensional subspace, searched without gradients — CMA-ES ensembles, a variational CMA-ES, ABC-SMC
and SNPE on labels only — so that the black box's predictions come with calibrated uncertainty.

Flow (``pipeline.train``): the task's few-shot rows → the black box (a local LM or an HTTP endpoint)
→ the projection A → ``algorithm`` searches z → prompts (and weights) saved → accuracy, ECE,
AURC and OOD scores.

Paper term → recipe field → code:
  black box: prompt embeddings + texts → logits, or labels only   box.level, box.model, box.template, box.verbalizer   blackbox.HFBlackBox, blackbox.LabelOnly
  remote black box over HTTP                                     box.endpoint           remote.RemoteBlackBox, serve_blackbox
  p = A·z, A fixed random with scaled entries                     projection.d, projection.seed   projection.random_projection, projection_stats, to_prompts
  (a) ensemble of M CMA-ES runs                                   cma.*                  algorithms.cma_ensemble
  (b) CMA-ES over q(z) = N(μ, diag σ²), negative ELBO             elbo.*                 algorithms.cma_elbo, projection.negative_elbo, kl_diag_gaussian
  (c) ABC-SMC on labels only                                      abc.*                  algorithms.abc_smc, predictive.vote_histogram
  (d) sequential neural posterior estimation                     snpe.*                 snpe.snpe
  baselines: zero-shot, gradient soft-prompt tuning (peft)        algorithm, prompt_tuning.*   pipeline.train, prompt_tuning.train
  predictive: averaged softmax or vote histogram, and metrics     eval.*                 predictive.softmax_average, predictive.report
  few-shot SST-2 / AG News rows shipped with provenance           task                   tasks.textcls.load_task
  (not in the paper) a killed search resumes per generation/round   resume, resume_allow_changes   resume.SearchCheckpoint, algorithms.cma_elbo
"""
