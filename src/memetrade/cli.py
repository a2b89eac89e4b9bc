"""The command line: ``memetrade serve``. A thin shell over ``config`` and ``bootstrap``."""

import logging
import sys
from typing import Any

import click

from memetrade import __version__
from memetrade.config import SETTINGS, ConfigError, load_settings

__all__ = ["main"]

# Exit statuses: 0 clean shutdown, 1 a failure while running, 2 bad settings, 3 cannot start.
EXIT_BAD_SETTINGS = 2
EXIT_CANNOT_START = 3


def _settings_options(command: Any) -> Any:
    for setting in reversed(SETTINGS):
        command = click.option(
            setting.option,
            *setting.aliases,
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
        sys.exit(EXIT_BAD_SETTINGS)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Imported here so that `--help` and bad settings answer without loading the server.
    from memetrade.bootstrap import Service, StartupError, run

    try:
        status = run(Service(settings).serve(lambda line: click.echo(line, err=True)))
    except StartupError as exc:
        click.echo(f"memetrade: {exc}", err=True)
        sys.exit(EXIT_CANNOT_START)
    sys.exit(status)
