"""``mmthink serve``: an OpenAI-compatible server for every model mmthink trains.

  cli.py        the command: bind, load in the background, serve
  model.py      what is served: the model, its prompts (chat template, images), its method mode
  engine.py     continuous batching over ``ops.latent.DecodeBatch`` on one thread; stop strings
  api.py        FastAPI routes and OpenAI's JSON shapes, errors, streaming
  telemetry.py  /metrics (Prometheus)
"""
