"""The .env beside a settings file: written by init, read by every command's config.load."""

from __future__ import annotations

import os
import subprocess

import pytest

from dynoscaler import config, envfile
from dynoscaler.config import ConfigError

SETTINGS = """
apps:
  shop:
    roles:
      worker: {queues: [{name: default, backend: sidekiq, url: "${SHOP_REDIS_URL}"}]}
"""


def test_values_come_back_as_written_and_others_are_kept(tmp_path):
    env_file = str(tmp_path / ".env")
    (tmp_path / ".env").write_text("# mine\nKEEP=1\nSHOP_REDIS_URL=old\n")
    awkward = "redis://u:p'a$s{w}\"#rd ${HOME}@127.0.0.1:6379/5"
    envfile.write(env_file, {"SHOP_REDIS_URL": awkward, "OTHER": "x"})
    assert envfile.values(env_file) == {"KEEP": "1", "SHOP_REDIS_URL": awkward, "OTHER": "x"}
    assert os.stat(env_file).st_mode & 0o777 == 0o600
    assert "# mine" in (tmp_path / ".env").read_text()


def test_the_environment_wins_and_a_variable_in_neither_names_both_places(tmp_path):
    path = tmp_path / "autoscale.yml"
    path.write_text(SETTINGS)
    with pytest.raises(ConfigError) as missing:
        config.load(path, {})
    message = str(missing.value)
    assert "environment variable SHOP_REDIS_URL is not set" in message
    assert f"(neither in the environment nor in {tmp_path / '.env'})" in message
    envfile.write(str(tmp_path / ".env"), {"SHOP_REDIS_URL": "redis://127.0.0.1:6379/5"})
    queue = config.load(path, {}).roles[0].queues[0]
    assert queue.url == "redis://127.0.0.1:6379/5"
    queue = config.load(path, {"SHOP_REDIS_URL": "redis://elsewhere:6379/1"}).roles[0].queues[0]
    assert queue.url == "redis://elsewhere:6379/1"


def test_an_unreadable_env_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "autoscale.yml"
    path.write_text(SETTINGS)
    (tmp_path / ".env").write_bytes(b"SHOP_REDIS_URL=\xff\xfe\n")
    with pytest.raises(ConfigError, match=r"\.env: cannot read: .*utf-8"):
        config.load(path, {})


def test_git_ignores_the_env_file_once(tmp_path):
    env_file = str(tmp_path / ".env")
    assert envfile.ignore_in_git(env_file) is False  # not a git repository
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("*.pyc")  # the user's, without a last newline
    assert envfile.ignore_in_git(env_file) is True
    assert envfile.ignore_in_git(env_file) is False  # ignored already
    assert (tmp_path / ".gitignore").read_text() == "*.pyc\n/.env\n"
