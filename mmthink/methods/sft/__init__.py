"""Supervised fine-tuning on chat rows: the supervised stage every method builds on (``train sft``).

Flow (``pipeline.train``): chat rows → tokenised with the prompt masked → ``runner.loop.fit`` →
``model/`` and the evaluation (loss, perplexity, exact match of greedy replies).

Paper term → recipe field → code:
  chat rows, prompt tokens masked from the loss                  data.train_file, data.max_length, data.packing   data.chat.tokenize_chat, runner.sft.tokenize_rows
  token NLL summed, normalised over the whole optimiser step     runner.batch_size, runner.micro_batch_size   ops.lm.token_nll_sum, runner.loop.fit
  optimiser and schedule                                         optim.*                runner.loop.make_optimizer, runner.schedule.lr_factor
  evaluation: loss, perplexity, exact match                      eval.*, data.eval_file   pipeline.evaluate, runner.loop.perplexity
"""
