"""`reasoner serve`: the analyst workbench on this machine.

Registered in `reasoner/cli.py` as `app.command("serve")(serve)`. It loads the policies first, as
every command does (a broken policy folder is reported, exit 3, before anything listens), then
serves on 127.0.0.1 unless told otherwise: the workbench has no accounts, so it is for the person
at this machine. Exit 2 when the port is taken or the address cannot be used.
"""
from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated, Optional

import typer

EXIT_USAGE, EXIT_INPUT = 2, 3


def _can_bind(host: str, port: int) -> str | None:
    """Why the server could not listen on host:port, or None (checked first, for a clear message)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        return f"cannot use the address {host!r}: {err.strerror}."
    family, *_, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as err:
            if port and err.errno in (98, 48, 10048):
                return f"port {port} is already in use on {host}; choose another with --port."
            return f"cannot listen on {host}:{port}: {err.strerror or err}."
    return None


def serve(
    port: Annotated[int, typer.Option("--port", min=0, max=65535, metavar="N", help="Port to listen on.")] = 8000,
    host: Annotated[str, typer.Option("--host", metavar="ADDRESS",
                                      help="Address to listen on (default: this machine only).")] = "127.0.0.1",
    policies: Annotated[Optional[Path], typer.Option("--policies", readable=False, metavar="DIR",
                                                     help="Policy folder (default: the bundled policies/).")] = None,
) -> None:
    """Start the analyst workbench in the browser: member form with every payer's decision, why /
    why-not with repairs, criteria matrix, disagreement search, and the policies themselves."""
    import uvicorn

    from reasoner.errors import InputError
    from reasoner.language.load import load
    from reasoner.present import render
    from reasoner.web.app import LOOPBACK, create_app

    err = render.console(stderr=True)
    try:
        loaded = load(policies)
    except InputError as error:
        err.print(render.problems_text(error.problems), end="")
        raise typer.Exit(EXIT_INPUT)
    problem = _can_bind(host, port)
    if problem:
        err.print(f"reasoner serve: {problem}")
        raise typer.Exit(EXIT_USAGE)
    local = host in LOOPBACK
    if not local:
        err.print(f"warning: serving on {host}, reachable from other machines; the workbench has no login.")
    app = create_app(loaded, LOOPBACK if local else ("*",))
    shown = f"[{host}]" if ":" in host else host
    err.print(f"reasoner workbench: {len(loaded.program.policies)} policies loaded; open http://{shown}:{port}/ "
              "(Ctrl-C to stop)")
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False, timeout_graceful_shutdown=3)
