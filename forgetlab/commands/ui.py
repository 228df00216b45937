"""`forgetlab ui`: the MLflow UI over the local store, on 127.0.0.1 unless told otherwise."""

from __future__ import annotations

from typing import Optional

import typer

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def exposure_warning(host: str) -> str | None:
    """A warning when the UI would be reachable from other machines."""
    if host in LOOPBACK_HOSTS:
        return None
    return f"warning: binding to {host} makes every run in this store readable from the network"


def server_command(tracking_uri: str, host: str, port: int, artifact_root: Optional[str]) -> list[str]:
    import sys

    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri, "--host", host, "--port", str(port)]
    if artifact_root:
        command += ["--default-artifact-root", artifact_root]
    return command


def register(app: typer.Typer) -> None:
    @app.command("ui")
    def ui_command(
        host: str = typer.Option("127.0.0.1", help="Address to bind; anything but loopback exposes your runs."),
        port: int = typer.Option(5000, help="Port to serve on."),
        tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="Store to show (default: mlruns/mlflow.db)."),
    ) -> None:
        """Open the MLflow UI over the tracking store (lean: no background job workers).

        Example: forgetlab ui --port 5001
        """
        import os
        import signal
        import subprocess

        from forgetlab.errors import UserError
        from forgetlab.paths import default_artifact_root, resolve_tracking_uri, sqlite_path

        uri = resolve_tracking_uri(tracking_uri)
        if uri.startswith(("http://", "https://")):
            raise UserError(f"the tracking store is a server already ({uri}); open it in a browser")
        database = sqlite_path(uri)
        if database is not None and not database.exists():
            raise UserError(f"no tracking store at {database}; run `forgetlab run --config lightning_configs/r4.yaml` first")
        warning = exposure_warning(host)
        if warning:
            typer.secho(warning, err=True, fg=typer.colors.YELLOW)
        environment = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", MLFLOW_DISABLE_TELEMETRY="true")
        artifact_root = default_artifact_root().resolve().as_uri() if database is not None else None
        typer.echo(f"MLflow UI for {uri} at http://{host}:{port}  (Ctrl-C to stop)")
        process = subprocess.Popen(server_command(uri, host, port, artifact_root), env=environment)

        def stop_server(signum, frame):  # SIGTERM to `forgetlab ui` must not orphan the server
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop_server)
        try:
            code = process.wait()
        except KeyboardInterrupt:
            process.terminate()
            process.wait(timeout=20)
            code = 0
        raise typer.Exit(code)
