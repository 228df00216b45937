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


def _checked_store(tracking_uri: Optional[str]) -> tuple[str, Optional[str]]:
    """The store's URI and its artifact root; one-line errors for a server or a missing store."""
    from forgetlab.errors import UserError
    from forgetlab.locations import default_artifact_root, resolve_tracking_uri, sqlite_path

    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith(("http://", "https://")):
        raise UserError(f"the tracking store is a server already ({uri}); open it in a browser")
    database = sqlite_path(uri)
    if database is not None and not database.exists():
        raise UserError(
            f"no tracking store at {database}; run `forgetlab run --config lightning_configs/r4.yaml` first"
        )
    return uri, default_artifact_root().resolve().as_uri() if database is not None else None


def register(app: typer.Typer) -> None:
    @app.command("ui")
    def ui_command(
        host: str = typer.Option("127.0.0.1", help="Address to bind; anything but loopback exposes your runs."),
        port: int = typer.Option(5000, min=1, max=65535, help="Port to serve on."),
        tracking_uri: Optional[str] = typer.Option(
            None, "--tracking-uri", help="Store to show (default: mlruns/mlflow.db)."
        ),
        experiment: str = typer.Option(
            "forgetlab", "--experiment", "-e", help="Experiment whose runs address is printed."
        ),
        open_browser: bool = typer.Option(False, "--open", help="Open the experiment's runs in the default browser."),
    ) -> None:
        """Serve the MLflow UI over the tracking store (lean: one worker, no background job runners).

        Any way into the UI (home, experiments, a run, compare) opens in model-training mode, and a
        browser that has not opened an experiment before gets forgetlab's saved view of it: the
        columns and charts a forgetting study compares (also under "Views" and at the printed share
        link). Prints the experiment's runs address. Example: forgetlab ui --port 5001 --open
        """
        import signal

        from forgetlab import ui_server

        uri, artifact_root = _checked_store(tracking_uri)
        ui_server.check_port_free(host, port)
        warning = exposure_warning(host)
        if warning:
            typer.secho(warning, err=True, fg=typer.colors.YELLOW)
        url = ui_server.browse_url(host, port)
        with_app = ui_server.app_installed()
        if not with_app:
            typer.secho(
                "warning: forgetlab's MLflow app plugin is not installed (pip install -e .); a fresh browser "
                "opens MLflow's GenAI screens and default columns",
                err=True,
                fg=typer.colors.YELLOW,
            )
        typer.echo(f"starting the MLflow UI for {uri} at {url}  (Ctrl-C to stop)")
        process = ui_server.start_server(ui_server.server_command(uri, host, port, artifact_root, with_app=with_app))

        def stop_server(signum, frame):  # SIGTERM to `forgetlab ui` must not orphan the server
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop_server)
        try:
            _announce(ui_server, process, url, experiment, open_browser)
            code = process.wait()
        except KeyboardInterrupt:
            code = 0
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=20)
        raise typer.Exit(code)


def _announce(ui_server, process, url: str, experiment: str, open_browser: bool) -> None:
    """Wait for the server, then print (and open) the experiment's runs address."""
    from forgetlab.mlflow_ui import VIEW_KEY

    ui_server.wait_until_serving(url, process)
    address = ui_server.experiment_address(url, experiment)
    if address is None:
        typer.echo(f"no experiment '{experiment}' in this store yet; the UI is at {url}")
        address = url
    else:
        typer.echo(f"runs of '{experiment}': {address}")
        typer.echo(f"forgetlab's view of them (any browser): {address}&viewStateShareKey={VIEW_KEY}")
    if open_browser:
        import webbrowser

        webbrowser.open(address)
