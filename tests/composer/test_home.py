"""Where Composer keeps its files: COMPOSER_HOME on every platform, composer.json, auth.json."""

import pytest

from magedl.composer import home
from magedl.composer.home import composer_home, global_auth_path, project_auth_path
from magedl.errors import ConfigError


@pytest.fixture
def no_etc_xdg(monkeypatch, tmp_path):
    monkeypatch.setattr(home, "_ETC_XDG", str(tmp_path / "no-etc-xdg"))


def test_composer_home_env_var_wins(tmp_path):
    env = {"COMPOSER_HOME": str(tmp_path / "ch"), "HOME": str(tmp_path), "APPDATA": "x"}
    assert composer_home(env, "linux") == tmp_path / "ch"
    assert composer_home(env, "win32") == tmp_path / "ch"
    assert global_auth_path(env, "linux") == tmp_path / "ch" / "auth.json"


def test_xdg_dir_when_neither_exists(tmp_path, no_etc_xdg):
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert composer_home(env, "linux") == tmp_path / "xdg" / "composer"


def test_existing_dot_composer_beats_missing_xdg_dir(tmp_path, no_etc_xdg):
    (tmp_path / ".composer").mkdir()
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert composer_home(env, "linux") == tmp_path / ".composer"


def test_existing_xdg_dir_beats_dot_composer(tmp_path, no_etc_xdg):
    (tmp_path / ".composer").mkdir()
    (tmp_path / "xdg" / "composer").mkdir(parents=True)
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert composer_home(env, "linux") == tmp_path / "xdg" / "composer"


def test_any_xdg_variable_means_xdg_with_default_config_dir(tmp_path, no_etc_xdg):
    env = {"HOME": str(tmp_path) + "/", "XDG_RUNTIME_DIR": "/run/user/1000"}
    assert composer_home(env, "linux") == tmp_path / ".config" / "composer"


@pytest.mark.parametrize("platform", ["linux", "darwin"])
def test_no_xdg_means_dot_composer(tmp_path, no_etc_xdg, platform):
    assert composer_home({"HOME": str(tmp_path)}, platform) == tmp_path / ".composer"


def test_etc_xdg_means_xdg(tmp_path, monkeypatch):
    (tmp_path / "etc-xdg").mkdir()
    monkeypatch.setattr(home, "_ETC_XDG", str(tmp_path / "etc-xdg"))
    assert composer_home({"HOME": str(tmp_path)}, "darwin") == tmp_path / ".config" / "composer"


def test_windows_uses_appdata():
    env = {"APPDATA": "C:\\Users\\ann\\AppData\\Roaming\\"}
    assert str(composer_home(env, "win32")) == "C:/Users/ann/AppData/Roaming/Composer"


def test_windows_without_appdata_is_an_error():
    with pytest.raises(ConfigError, match="APPDATA"):
        composer_home({"HOME": "/x"}, "win32")


def test_no_home_is_an_error():
    with pytest.raises(ConfigError, match="HOME"):
        composer_home({}, "linux")


def test_default_environment(monkeypatch, isolated_home, no_etc_xdg):
    monkeypatch.delenv("COMPOSER_HOME", raising=False)
    assert composer_home() == isolated_home / ".config" / "composer"
    monkeypatch.setenv("COMPOSER_HOME", str(isolated_home / "ch"))
    assert global_auth_path() == isolated_home / "ch" / "auth.json"



def test_paths(tmp_path):
    env = {"COMPOSER_HOME": str(tmp_path / "ch")}
    assert global_auth_path(env) == tmp_path / "ch" / "auth.json"
    assert project_auth_path(tmp_path, env) == tmp_path / "auth.json"
