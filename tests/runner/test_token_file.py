"""Ray's token file is made private (0600) after Ray wrote it with the process's umask."""

import stat

from explorer.runner.pool import private_token_file


def test_ray_token_file_is_made_private(tmp_path, monkeypatch):
    token = tmp_path / "auth_token"
    token.write_text("0" * 64)
    token.chmod(0o644)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    assert private_token_file() == token
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert private_token_file() is None                 # already private: nothing to do


def test_no_token_file_is_left_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "absent"))
    assert private_token_file() is None
    assert not (tmp_path / "absent").exists()
