"""The command line: ``memetrade serve``. A thin shell over ``config`` and ``bootstrap``."""

import asyncio
import logging
import sys
from typing import Any

import click
import uvicorn

from memetrade import __version__
from memetrade.config import SETTINGS, ConfigError, Settings, load_settings

__all__ = ["main"]


def _settings_options(command: Any) -> Any:
    for setting in reversed(SETTINGS):
        command = click.option(
            setting.option,
            setting.env,
            default=None,
            metavar="VALUE",
            help=f"{setting.help} [env: {setting.env}; default: {setting.default or 'unset'}]",
        )(command)
    return command


@click.group()
@click.version_option(__version__, prog_name="memetrade")
def main() -> None:
    """memetrade: real-time market data for meme tokens."""


@main.command()
@_settings_options
def serve(**options: str | None) -> None:
    """Run the service: REST and WebSocket API, candle aggregation, storage, mock generator.

    Every option can also be given as the environment variable shown in its help.
    """
    try:
        settings = load_settings(options)
    except ConfigError as exc:
        click.echo(f"memetrade: {exc}", err=True)
        sys.exit(2)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    sys.exit(asyncio.run(_serve(settings)))


async def _serve(settings: Settings) -> int:
    from memetrade.bootstrap import build_app

    failure: list[BaseException] = []

    def on_fatal(error: BaseException) -> None:
        failure.append(error)
        server.should_exit = True

    app = build_app(settings, on_fatal)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        ws_ping_interval=20,
        ws_ping_timeout=20,
        ws_max_size=64 * 1024,
        backlog=4096,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    # uvicorn tells readiness only through this flag.
    while not server.started and not serving.done():  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    if server.started:
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        click.echo(f"memetrade listening on http://{host}:{port} (docs: /docs)", err=True)
    await serving
    if failure or not server.started:
        return 1
    return 0
