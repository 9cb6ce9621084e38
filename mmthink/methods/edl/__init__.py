"""Consistent evidential deep learning (arXiv 2402.06160): Dirichlet networks whose epistemic
uncertainty behaves as it should — the classic EDL objectives against Bootstrap-Distill and a
mixture-of-Dirichlets target distilled into one network.

Flow (``pipeline.train``): the recipe's split (digits, synthetic or encoded text) → ``train.train_edl``
with ``edl.objective`` → ``model/`` and the evaluation (accuracy, ECE, AURC and OOD AUROC per score).

Paper term → recipe field → code:
  Dirichlet network, α = g(logits) + 1                           edl.hidden, edl.evidence   model.EvidentialMLP, losses.evidence_to_alpha
  EDL losses (Sensoy et al.: MSE, log, digamma)                   edl.objective          losses.edl_mse_loss, edl_log_loss, edl_digamma_loss
  EDL regulariser KL(Dir(α̃) ‖ Dir(1)), annealed weight          edl.kl_anneal_epochs   losses.edl_kl_regulariser, edl_annealing, train._classic_loss
  belief matching −E[log p_y] + λ·KL(Dir(α) ‖ Dir(1))             edl.bm_coef            losses.belief_matching_loss
  reverse-KL prior network                                       edl.target_concentration   losses.reverse_kl_prior_network_loss, prior_network_target
  PostNet: latent density per class, α_c = 1 + N_c·p(z|c)         edl.latent_dim, edl.flow_layers, edl.entropy_reg   postnet.PosteriorNetwork, losses.postnet_alpha, postnet_loss
  Bootstrap-Distill: M members distilled into one Dirichlet       edl.members, edl.distill_evidence   train._train_bootstrap_distill, losses.dirichlet_nll
  mixture-of-Dirichlets target, VB-EM, its ELBO                  edl.components_per_class, edl.mixture_prior   train.fit_mixture_target, losses.mixture_vb_update, mixture_elbo
  distillation of the target: max E_{π ~ target} log Dir(π|α)     edl.target_samples     losses.sample_mixture_target, train._train_mixture_distill
  training: Adam over minibatches                                edl.epochs, edl.lr, edl.batch_size, edl.seed   train.train_edl, config.EDLConfig
  uncertainty scores: MI, expected entropy, α₀, ...               —                      scores.mutual_information, expected_entropy, total_concentration, evaluate.SCORES
  evaluation: accuracy, ECE, AURC, OOD AUROC                      eval.n_bins            evaluate.score, metrics.selective.aurc, auroc
  data: digits, synthetic, text encoded by a sentence encoder     data.*                 data.digits_split, data.synthetic, text.text_split
"""
