"""Fairness with uncertain sensitive attributes (arXiv 2302.08077): fair prediction when S is known on few rows.

Flow: ``data`` (tables) → ``gaussian`` (closed forms: nominal and robust QCQP, radii, value of
labels) or ``bootstrap`` (the generic algorithm) → ``fit`` (fit, score, save, label curve) →
``pipeline`` (the ``fair fit`` / ``fair curve`` verbs, mounted by ``cli``).

Paper term → recipe field → code:
  I(S;Ŷ) ≤ ε, t² = σ_S²(1 − e^{−2ε})                              epsilon                gaussian.threshold, gaussian.mutual_information_from_rho
  nominal QCQP, closed form (slab ∩ sphere)                      algorithm              gaussian.fair_direction, gaussian.slab_sphere_argmax
  robust QCQP, ball ‖b − b̂‖ ≤ r → t − r                           algorithm              gaussian.robust_fair_direction
  r = O(1/√n): concentration or bootstrap                        radius, delta, radius_replicates   gaussian.radius_concentration, gaussian.radius_bootstrap
  value of each labelled sample                                  curve_ns, curve_algorithms   gaussian.value_of_labels, fit.label_curve, fit.plot_value_of_labels
  generic bootstrap algorithm                                    bootstrap.*            bootstrap.fit_bootstrap, config.BootstrapConfig
  tables, synthetic Gaussian, diabetes                           data.path, data.target, data.sensitive, data.features   data.read_table, data.select_columns, data.gaussian_table, data.export_diabetes
  fit / evaluate / save                                          holdout, output_dir    fit.fit_fair → fit.FairResult, fit.score_result, fit.save_result, fit.load_result, fit.predict
"""
