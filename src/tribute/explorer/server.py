"""``tribute serve``: build the configuration, print the address, run uvicorn."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from ..errors import InputError
from ._deps import require
from .app import ExplorerConfig, create_app
from .security import is_loopback, new_token
from .subjects import SubjectSpec, default_specs, file_spec

__all__ = ["build_config", "serve"]


def build_config(*, model: str | None = None, weights: str | None = None,
                 data: str | None = None, data_key: str | None = None,
                 results: str | None = None, host: str = "127.0.0.1", token: str | None = None,
                 text: bool = True, channels: str | None = None) -> ExplorerConfig:
    """The server's configuration from the command line's options.

    Without ``model`` the built-in subjects are served (digits, and MiniLM when installed).
    Binding beyond loopback requires a token: without one a fresh token is generated.
    """
    if weights is not None and model is None:
        raise InputError("--weights needs --model (the factory the weights belong to).")
    specs: list[SubjectSpec]
    data_dir = None
    if model is not None:
        specs = [file_spec(model, weights, data, data_key, channels=channels)]
    elif channels is not None:
        raise InputError("--channels needs --model and --data (the layout of those images).")
    elif data is not None:
        raise InputError("--data needs --model (the model that reads those inputs); without "
                         "--model the built-in digits and MiniLM subjects are served.")
    else:
        specs = default_specs(text=text)
    if data is not None:
        p = Path(data)
        if not p.is_file():
            raise InputError(f"--data: file {data!r} does not exist.")
        data_dir = p.resolve().parent
    results_dir = None
    if results is not None:
        r = Path(results)
        if not r.is_dir():
            raise InputError(f"--results: {results!r} is not a folder (pass the --out folder of "
                             "`tribute bench`, or a folder holding several).")
        results_dir = r.resolve()
    if token is None and not is_loopback(host):
        token = new_token()
    if token is not None and len(token) < 16:
        raise InputError(f"--token: {len(token)} characters is too short; use at least 16 "
                         "(or leave it out to have one generated).")
    return ExplorerConfig(subjects=specs, data_dir=data_dir, results_dir=results_dir,
                          token=token, host=host)


def address(config: ExplorerConfig, port: int) -> str:
    host = config.host if ":" not in config.host else f"[{config.host}]"
    url = f"http://{host}:{port}/"
    return url + (f"?token={config.token}" if config.token else "")


def serve(config: ExplorerConfig, port: int = 8765, *, preload: bool = True,
          stream: TextIO | None = None) -> None:
    """Run the explorer until interrupted (Ctrl-C); prints its address once it listens.

    ``preload`` builds the subjects in a background thread right after start-up, so the first
    explanation does not wait for the model to load.
    """
    uvicorn = require("uvicorn")
    out = stream if stream is not None else sys.stdout
    app = create_app(config)
    t0 = time.perf_counter()
    server = uvicorn.Server(uvicorn.Config(app, host=config.host, port=port, log_level="warning",
                                           access_log=False, lifespan="on"))

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.02)
        if server.started:
            print(f"tribute explorer: serving on {address(config, port)} (started in "
                  f"{time.perf_counter() - t0:.2f} s; Ctrl-C stops)", file=out, flush=True)
            if not is_loopback(config.host):
                print("tribute explorer: bound beyond this machine; every request must carry the "
                      "token above.", file=out, flush=True)
            if preload:
                for spec in config.subjects:
                    try:
                        spec.get()
                    except InputError as exc:
                        print(f"tribute explorer: subject {spec.name!r} unavailable: {exc}",
                              file=out, flush=True)
                    else:
                        print(f"tribute explorer: subject {spec.name!r} ready after "
                              f"{time.perf_counter() - t0:.2f} s", file=out, flush=True)

    threading.Thread(target=announce, name="tribute-explorer-announce", daemon=True).start()
    server.run()
