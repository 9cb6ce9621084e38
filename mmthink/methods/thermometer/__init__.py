"""Thermometer (Shen et al., ICML 2024, arXiv 2403.08819): one auxiliary network, trained on many
tasks, predicts a temperature for a new task from its unlabelled prompts.

Flow: ``prompting`` (the prompts) → ``scoring`` (feature and option scores of a batch) →
``freeform`` (free-form QA as Yes/No rows) → ``extract`` (every task file, chunked and resumable,
into ``features_io``'s folder) → ``model`` (network, calibrator folder) → ``losses`` → ``fit``
(training over tasks) → ``evaluate`` (leave-one-task-out against TS baselines) → ``apply``
(calibrate a new task). ``pipeline`` holds the ``calibrate`` verbs, ``cli`` mounts them.

Paper term → recipe field → code:
  auxiliary network ψ: three branches Linear → ReLU → Linear      thermometer.hidden     model.Thermometer
  feature: last hidden state of the final prompt token           features.batch_size    scoring.forward_last
  prompt: Question, A./B. option lines, Answer:                  features.chat          prompting.render_prompt, tasks.mcq.format_prompt
  option scores: letter logits (paper) or option log-likelihood   features.scoring       prompting.letter_token_ids, scoring.option_loglik
  features of every task file, chunked and resumable             features.dir, features.chunk_size   extract.extract_all, features_io.save_task, load_features
  dataset temperature 1/τ = mean_n 1/τ_n                          —                      model.dataset_inverse_temperature, dataset_temperature
  L = NLL of softmax(z/τ) + λ·Gamma prior on τ                    thermometer.lam, thermometer.gamma_shape, thermometer.gamma_scale   losses.thermometer_loss, gamma_prior_nll
  training: one task per step, AdamW                             thermometer.steps, thermometer.batch_size, thermometer.lr   fit.train_thermometer
  best validation NLL                                            thermometer.val_every, thermometer.val_fraction   fit.split_rows, validation_nll
  leave-one-task-out against TS baselines                        eval.loto, eval.diagrams   evaluate.leave_one_task_out, metrics.calibration.fit_temperature
  metrics: ECE, MCE, TL-ECE, NLL, Brier                          eval.n_bins            metrics.calibration.calibration_report, evaluate.score_task
  free-form QA: ROUGE-L > 0, then a Yes/No row                    data.freeform          extract.extract_freeform, freeform.yes_no_row, tasks.grading.rouge_l
  calibrate a new task                                           —                      apply.calibrate_task, pipeline.apply_calibrator
"""
