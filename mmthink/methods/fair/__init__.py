"""Fairness with uncertain sensitive attributes (arXiv 2302.08077): fair prediction when S is known on few rows.

Paper term → code:
  I(S;Ŷ) ≤ ε, t² = σ_S²(1 − e^{−2ε})          gaussian.threshold, gaussian.mutual_information_from_rho
  nominal QCQP, closed form (slab ∩ sphere)     gaussian.fair_direction (slab_sphere_argmax)
  robust QCQP, ball ‖b − b̂‖ ≤ r → t − r         gaussian.robust_fair_direction
  r = O(1/√n): concentration / bootstrap        gaussian.radius_concentration, gaussian.radius_bootstrap
  value of each labelled sample                 gaussian.value_of_labels, fit.label_curve, fit.plot_value_of_labels
  generic bootstrap algorithm                   bootstrap.fit_bootstrap (BootstrapConfig)
  tables, synthetic Gaussian, diabetes          data.read_table, data.select_columns, data.gaussian_table,
                                                data.export_diabetes
  fit / evaluate / save                         fit.fit_fair → fit.FairResult, fit.score_result, fit.save_result,
                                                fit.load_result, fit.predict
"""
