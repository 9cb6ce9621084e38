"""``mmthink serve``: bind first, load the model in the background (``/health`` answers 503 meanwhile),
then serve until interrupted. A model that cannot load stops the server with one line and exit 2."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from typing import Optional

from pathlib import Path

import typer

from mmthink import registry
from mmthink.commands import user_errors
from mmthink.errors import UserError


def _check_port(host: str, port: int) -> None:
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as e:
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror}") from None


def start_engine(served, max_concurrent: int, max_queue: int, telemetry):
    from mmthink.serve.engine import Engine

    latent = served.latent_defaults
    return Engine(served.model, served.tokenizer, served.latent, max_concurrent, max_queue,
                  latent.mode if latent and latent.mode != "target" else "model",
                  latent.stop if latent else "argmax", on_step=telemetry.engine_step).start()


@user_errors
def serve(
    model: str = typer.Option(..., "--model", "-m", help="A preset (tiny-llama, smollm2-135m-instruct, ...), a run's "
                                                          "model/ or adapter/ folder, or a hub id"),
    recipe: Optional[str] = typer.Option(None, "--recipe", "-r", help="The recipe the checkpoint was trained with "
                                         "(default: read from its run folder): sets the method mode"),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (0.0.0.0 exposes the server)"),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    api_key: Optional[str] = typer.Option(None, "--api-key", help="Required as 'Authorization: Bearer KEY' "
                                          "(default: env MMTHINK_API_KEY; none: open)"),
    max_concurrent: int = typer.Option(16, "--max-concurrent", min=1, help="Rows (choices) decoded together"),
    max_queue: int = typer.Option(64, "--max-queue", min=0, help="Requests waiting beyond those; more get 429"),
    max_input_tokens: Optional[int] = typer.Option(None, "--max-input-tokens", min=1,
                                                   help="Longest prompt accepted (default: half the total)"),
    max_total_tokens: Optional[int] = typer.Option(None, "--max-total-tokens", min=2,
                                                   help="Prompt + completion limit (default: the model's context)"),
    dtype: str = typer.Option("float32", "--dtype", help="float32 | bfloat16 | float16 | auto"),
    device: str = typer.Option("auto", "--device", help="auto (a GPU when one is visible) | cpu | cuda | cuda:N"),
    bits: Optional[int] = typer.Option(None, "--bits", help="Load the weights in 4 or 8 bits (bitsandbytes), e.g. "
                                       "the base of a QLoRA adapter folder"),
    served_model_name: Optional[str] = typer.Option(None, "--served-model-name",
                                                    help="The name clients send as 'model' (default: --model)"),
    allow_local_files: bool = typer.Option(False, "--allow-local-files",
                                           help="Accept image_url parts naming a file on this machine"),
    calibrator: Optional[str] = typer.Option(None, "--calibrator", help="A Thermometer calibrator folder (calibrate "
                                             "fit): multiple-choice requests ('options') get calibrated confidences"),
):
    """OpenAI-compatible HTTP server (chat, completions, streaming, logprobs) for any mmthink model."""
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError:
        raise UserError("mmthink serve needs its extra: pip install 'mmthink[serve]'") from None
    from mmthink.models.config import ModelConfig
    from mmthink.serve.api import create_app
    from mmthink.serve.model import load_served
    from mmthink.serve.telemetry import Telemetry

    from mmthink.models.loading import resolve_path
    from mmthink.serve.model import read_mode

    from mmthink.models.config import QuantizationConfig

    ModelConfig(name=model, dtype=dtype, quantization=QuantizationConfig(bits=bits)).check()
    resolve_path(model)  # refused before binding: a path that is not there, a run folder instead of its model
    read_mode(model, recipe)
    if calibrator is not None and not Path(calibrator).is_dir():
        raise UserError(f"calibrator folder not found: {calibrator}")
    _check_port(host, port)
    telemetry = Telemetry()
    app = create_app(api_key=api_key or os.environ.get("MMTHINK_API_KEY") or None, telemetry=telemetry)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info", access_log=False))
    failure: list = []

    def load():
        try:
            served = load_served(model, recipe, dtype, max_input_tokens, max_total_tokens, allow_local_files,
                                 served_model_name, device, bits)
            if calibrator is not None:
                served.scorer = registry.load(registry.serve_hook("calibrator"))(calibrator, served.model,
                                                                                  served.tokenizer)
            app.state.served = served
            app.state.engine = start_engine(served, max_concurrent, max_queue, telemetry)
            typer.echo(f"mmthink serve: '{served.name}' ready on http://{host}:{port}/v1"
                       + (" (latent decoding)" if served.latent is not None else ""), err=True)
        except BaseException as e:  # reported by the main thread once the server stopped
            failure.append(e)
            server.should_exit = True

    threading.Thread(target=load, name="mmthink-load", daemon=True).start()
    server.run()
    if app.state.engine is not None:
        app.state.engine.close()
    if failure:
        raise failure[0]


def serve_in_thread(app, host: str = "127.0.0.1", port: int = 0):
    """Run ``app`` under uvicorn on a background thread (tests, benchmarks); returns (server, url).
    Port 0 picks a free one."""
    import time

    import uvicorn

    with socket.socket() as s:
        s.bind((host, port))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))
    threading.Thread(target=server.run, name="mmthink-uvicorn", daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start within 30 s")
        time.sleep(0.02)
    return server, f"http://{host}:{port}"


@contextlib.contextmanager
def serving(served, max_concurrent: int = 8, max_queue: int = 16, **app_options):
    """A server of ``served`` on a background thread for the ``with`` block (tests, benchmarks); yields its URL."""
    from mmthink.serve.api import create_app
    from mmthink.serve.telemetry import Telemetry

    telemetry = Telemetry()
    engine = start_engine(served, max_concurrent, max_queue, telemetry)
    server, url = serve_in_thread(create_app(served, engine, telemetry=telemetry, **app_options))
    try:
        yield url
    finally:
        server.should_exit = True
        engine.close()
