"""``atlas serve``: the HTTP API and the web pages on one address."""

from __future__ import annotations

import os
from typing import Any

import typer

from atlas.cli._common import state
from atlas.errors import InvalidInput, missing_extra


def serve(
    ctx: typer.Context,
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on (another than loopback needs a token)."
    ),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    threads: int | None = typer.Option(
        None,
        "--threads",
        help="Requests handled at once per process (default 8; more wait their turn).",
    ),
    processes: int = typer.Option(
        1, "--processes", help="Server processes sharing the port (one core each, at most)."
    ),
    warm_up: bool = typer.Option(
        True,
        "--warm-up/--no-warm-up",
        help="Load the word index, the vectors and the model before taking requests.",
    ),
) -> None:
    """Serve the API (/api/v1, OpenAPI at /api/v1/docs) and the web pages of the library.

    Bound to 127.0.0.1 by default. Bound to any other address, every request needs
    the token in ATLAS_API_TOKEN, or one generated now and printed once. Each
    process runs its requests under one interpreter lock; --processes N uses up to
    N cores (a process that dies is started again).
    """
    if not 1 <= port <= 65535:
        raise InvalidInput(f"--port must be between 1 and 65535, got {port}")
    if threads is not None and not 1 <= threads <= 256:
        raise InvalidInput(f"--threads must be between 1 and 256, got {threads}")
    if not 1 <= processes <= 64:
        raise InvalidInput(f"--processes must be between 1 and 64, got {processes}")
    # Requests run in parallel threads, so a matrix product (a search scores every
    # vector) gains nothing from a BLAS thread pool, whose threads spin beside the
    # requests: 10 ms of CPU per "more like this" with the pool, 6 ms without. Set
    # before numpy loads its BLAS; the server processes inherit it.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        import uvicorn

        from atlas.api import Security, create_app, is_loopback, new_token
        from atlas.api.app import PROCESS_ENV, REQUEST_THREADS, process_setup
        from atlas.api.processes import can_share_port, serve_processes
    except ImportError as exc:
        raise missing_extra("the web server (fastapi, uvicorn, jinja2)", "api") from exc
    token = os.environ.get("ATLAS_API_TOKEN") or None
    if token is not None and len(token) < 16:
        raise InvalidInput("ATLAS_API_TOKEN is too short; use at least 16 characters")
    if token is None and not is_loopback(host):
        token = new_token()
        typer.echo(f"atlas serve: API token (shown once): {token}", err=True)
    cli = state(ctx)
    library = cli.library()  # opens the library: migrations, interrupted tasks
    threads = threads or REQUEST_THREADS
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"atlas serve: http://{shown}:{port}/ (API: /api/v1, docs: /api/v1/docs)", err=True)
    # Clients (browsers, API pools) keep connections open between requests; closing them
    # after uvicorn's 5 s default races their next request (a reset, no answer).
    options: dict[str, Any] = {"log_level": "warning", "timeout_keep_alive": 75}
    if processes == 1:
        app = create_app(library, Security(token=token), threads=threads, warm=warm_up)
        uvicorn.run(app, host=host, port=port, **options)
        return
    # Each process opens the library itself, from the settings of this command.
    os.environ[PROCESS_ENV] = process_setup(cli.settings, token, threads, warm_up)
    cli.close()
    if can_share_port():
        if serve_processes(processes, host, port, options):
            raise typer.Exit(1)
        return
    # No SO_REUSEPORT here: uvicorn's workers, on one shared socket.
    factory = "atlas.api.app:app_from_environment"
    uvicorn.run(factory, factory=True, workers=processes, host=host, port=port, **options)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
