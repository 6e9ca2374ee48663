"""The `.env` beside a settings file: the values its `${VAR}` references name.

`dynoscaler init` writes the config vars it found there (mode 0600, listed in the
.gitignore when the directory is in a git repository, never printed), as `heroku
config -s` writes one for `heroku local`. Every command that loads a settings file
reads the .env beside it (python-dotenv): the process environment wins over the
file, so on Heroku the app's real config vars rule.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values, set_key

from dynoscaler import config  # its ConfigError (config reads the .env through this module)

NAME = ".env"


def beside(settings_path: str | os.PathLike[str]) -> str:
    """The .env of a settings file: in the file's own directory."""
    return os.path.join(os.path.dirname(os.path.abspath(settings_path)), NAME)


def environment(
    settings_path: str | os.PathLike[str], environ: Mapping[str, str]
) -> dict[str, str]:
    """`environ` over the values of the .env beside the settings file (if any)."""
    return {**values(beside(settings_path)), **environ}


def values(env_file: str) -> dict[str, str]:
    """A .env file's values, each as written (no `${}` expansion); {} when there is none."""
    if not os.path.isfile(env_file):
        return {}
    try:
        with open(env_file, encoding="utf-8") as stream:
            found = dotenv_values(stream=stream, interpolate=False)
    except (OSError, UnicodeDecodeError) as error:
        raise config.ConfigError(f"{env_file}: cannot read: {error}") from None
    return {name: value for name, value in found.items() if value is not None}


def load_beside(settings_path: str | os.PathLike[str]) -> None:
    """Put the .env's values into this process's environment (those it lacks), so the
    services' secrets (HEROKU_API_KEY, DYNOSCALER_WEBHOOK_TOKEN, ...) may live there too."""
    for name, value in values(beside(settings_path)).items():
        os.environ.setdefault(name, value)


def write(env_file: str, new_values: Mapping[str, str]) -> None:
    """Set `new_values` in the .env (others it holds are kept), readable by its owner only."""
    try:
        os.close(os.open(env_file, os.O_WRONLY | os.O_CREAT, 0o600))
        os.chmod(env_file, 0o600)
        for name, value in new_values.items():
            set_key(env_file, name, value, quote_mode="always")
        os.chmod(env_file, 0o600)  # set_key replaces the file
    except OSError as error:
        raise config.ConfigError(f"{env_file}: cannot write: {error.strerror}") from None


def ignore_in_git(env_file: str) -> bool:
    """Add the .env to the .gitignore of its directory when that is in a git repository
    and git does not ignore it yet; whether it was added."""
    directory, name = os.path.split(env_file)

    def git(*args: str) -> bool:
        try:
            done = subprocess.run(["git", "-C", directory, *args], capture_output=True)
        except OSError:  # no git
            return False
        return done.returncode == 0

    if not git("rev-parse", "--is-inside-work-tree") or git("check-ignore", "-q", name):
        return False
    ignore = Path(directory, ".gitignore")
    existing = ignore.read_text(encoding="utf-8") if ignore.exists() else ""
    separator = "" if not existing or existing.endswith("\n") else "\n"
    ignore.write_text(f"{existing}{separator}/{name}\n", encoding="utf-8")
    return True
