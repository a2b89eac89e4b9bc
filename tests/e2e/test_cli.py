"""The command line, run as a real process: ``python -m memetrade`` and the ``memetrade``
console script. Help, version, settings that fail at start, and options over env vars."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import memetrade

# Every setting the issue names; each must be an option and an environment variable.
SETTINGS = {
    "PORT": "--port",
    "HOST": "--host",
    "SYMBOLS": "--symbols",
    "MOCK_DATA": "--mock-data",
    "MOCK_DATA_INTERVAL": "--mock-data-interval",
    "MAX_CONNECTIONS": "--max-connections",
    "HISTORY_LIMIT": "--history-limit",
    "DATABASE_URL": "--database-url",
    "INGEST_TOKEN": "--ingest-token",
    "LOG_LEVEL": "--log-level",
    # Settings the service adds beyond the list.
    "MOCK_SEED": "--mock-seed",
    "BACKFILL": "--backfill",
    "MAX_TRADE_AGE": "--max-trade-age",
}
CONSOLE_SCRIPT = Path(sys.executable).parent / "memetrade"
_LISTENING = re.compile(r"listening on http://([\d.]+):(\d+)")


def clean_env(data_dir: Path, **env: str) -> dict[str, str]:
    """The environment without any setting of the test run leaking in, plus ``env``."""
    base = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    return {
        **base,
        "PORT": "0",
        "MOCK_DATA": "0",
        "DATABASE_URL": f"sqlite:///{data_dir / 'memetrade.db'}",
        "LOG_LEVEL": "warning",
        **env,
    }


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # A timeout, so a setting wrongly accepted (a server that starts) fails instead of hanging.
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=20)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_serve_help_lists_every_setting_as_option_and_env_var(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "memetrade", "serve", "--help"]
    result = run(args, clean_env(tmp_path), tmp_path)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # the help is wrapped to the terminal width
    for env, option in SETTINGS.items():
        assert re.search(rf" {option}[ ,]", text), option  # aliases may follow
        assert f"[env: {env};" in text, env


def test_version_is_printed(tmp_path: Path) -> None:
    result = run([sys.executable, "-m", "memetrade", "--version"], clean_env(tmp_path), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"memetrade, version {memetrade.__version__}"


def test_console_script_is_installed_and_works(tmp_path: Path) -> None:
    assert CONSOLE_SCRIPT.is_file()
    assert os.access(CONSOLE_SCRIPT, os.X_OK)
    version = run([str(CONSOLE_SCRIPT), "--version"], clean_env(tmp_path), tmp_path)
    assert version.returncode == 0, version.stderr
    assert memetrade.__version__ in version.stdout
    help_ = run([str(CONSOLE_SCRIPT), "serve", "--help"], clean_env(tmp_path), tmp_path)
    assert help_.returncode == 0, help_.stderr
    assert "--port" in help_.stdout


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "abc"),
        ("PORT", "70000"),
        ("PORT", "-1"),
        ("HOST", "local host"),
        ("SYMBOLS", "pe pe"),
        ("SYMBOLS", ""),
        ("SYMBOLS", "PEPE,PEPE"),
        ("SYMBOLS", "TEST:0.03:1"),
        ("MOCK_DATA", "maybe"),
        ("MOCK_DATA_INTERVAL", "0"),
        ("MAX_CONNECTIONS", "lots"),
        ("HISTORY_LIMIT", "0"),
        ("MAX_TRADE_AGE", "-5"),
        ("LOG_LEVEL", "loud"),
        ("DATABASE_URL", "mysql://x/db"),
        ("DATABASE_URL", "postgresql://host:port/db"),
        ("INGEST_TOKEN", "short"),
    ],
)
def test_invalid_setting_exits_quickly_with_one_line_naming_it(
    tmp_path: Path, name: str, value: str
) -> None:
    started = time.monotonic()
    result = run(
        [sys.executable, "-m", "memetrade", "serve"], clean_env(tmp_path, **{name: value}), tmp_path
    )
    assert time.monotonic() - started < 10
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert name in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "memetrade.db").exists()  # failed before touching storage


def test_invalid_cli_option_names_the_option(tmp_path: Path) -> None:
    result = run(
        [sys.executable, "-m", "memetrade", "serve", "--port", "abc"], clean_env(tmp_path), tmp_path
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "--port" in lines[0]


def test_cli_option_overrides_the_environment_variable(tmp_path: Path) -> None:
    # PORT in the environment is even invalid: the option wins, so it is never read.
    port = free_port()
    env = clean_env(tmp_path, PORT="abc", LOG_LEVEL="loud")
    args = [str(CONSOLE_SCRIPT), "serve", "--port", str(port), "--log-level", "warning"]
    with subprocess.Popen(
        args, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stderr is not None
            log = []
            for line in process.stderr:
                log.append(line)
                if match := _LISTENING.search(line):
                    assert int(match.group(2)) == port
                    break
            else:
                raise AssertionError("the server did not start:\n" + "".join(log))
            response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
            assert response.text == "OK"
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0
