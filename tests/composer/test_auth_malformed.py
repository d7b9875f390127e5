"""find_keys on broken input: malformed COMPOSER_AUTH and files (errors), wrong-typed entries (warnings)."""

import json
import secrets

import pytest
from composer.authkit import HOST, World, auth_data, pair, write

from magedl.composer.sources import WARNING, Source
from magedl.errors import ConfigError

# Values that reach find_keys are registered as secrets for the whole test run: keep them
# unique so that no other test's text (md5 sums like "a" * 32) gets redacted.
R1, R2, R3 = (secrets.token_hex(16) for _ in range(3))


@pytest.fixture
def world(tmp_path):
    return World(tmp_path)


@pytest.mark.parametrize("value", ['{"http-basic": {', "null", "  ", "{'http-basic': {}}", "NaN"])
def test_malformed_composer_auth_is_an_error(world, value):
    world.env["COMPOSER_AUTH"] = value
    with pytest.raises(ConfigError) as info:
        world.find()
    assert "COMPOSER_AUTH environment variable is malformed" in str(info.value)
    assert info.value.exit_code == 1


def test_malformed_composer_auth_message_holds_no_key(world):
    keys = pair()
    world.env["COMPOSER_AUTH"] = json.dumps(auth_data(keys=keys))[:-2]
    with pytest.raises(ConfigError) as info:
        world.find()
    assert keys[0] not in str(info.value) and keys[1] not in str(info.value)
    assert "line 1 column" in str(info.value)


def test_composer_auth_nested_too_deeply_is_an_error(world):
    world.env["COMPOSER_AUTH"] = "[" * 100000 + "]" * 100000
    with pytest.raises(ConfigError, match="malformed.*nested too deeply"):
        world.find()


def test_empty_composer_auth_is_ignored(world):
    world.env["COMPOSER_AUTH"] = ""
    result = world.find()
    assert {s.source: s.present for s in result.searched}[Source.COMPOSER_AUTH] is False


def test_composer_auth_not_an_object_is_a_warning(world):
    world.env["COMPOSER_AUTH"] = '"repo.magento.com"'
    result = world.find()
    (finding,) = result.findings
    assert finding.level == WARNING and "COMPOSER_AUTH holds a JSON string" in finding.message


@pytest.mark.parametrize("where", ["global", "project"])
def test_auth_json_not_json_is_an_error_naming_the_file(world, where):
    keys = pair()
    path = world.global_auth if where == "global" else world.project_auth
    body = json.dumps(auth_data(keys=keys))
    write(path, body[:-3] + ",}}}")  # a trailing comma: valid PHP array syntax, not JSON
    with pytest.raises(ConfigError) as info:
        world.find()
    message = str(info.value)
    assert str(path) in message and "not valid JSON" in message and "line 1" in message
    assert keys[0] not in message and keys[1] not in message


def test_auth_json_with_bom_is_an_error(world):
    write(world.global_auth, "\ufeff" + json.dumps(auth_data(keys=pair())))
    with pytest.raises(ConfigError, match="byte-order mark"):
        world.find()


def test_auth_json_nested_too_deeply_is_an_error(world):
    write(world.project_auth, "[" * 100000 + "]" * 100000)
    with pytest.raises(ConfigError, match="nested too deeply"):
        world.find()


def test_auth_json_that_is_a_folder_is_an_error(world):
    world.project_auth.mkdir()
    with pytest.raises(ConfigError, match="is a folder"):
        world.find()


def test_malformed_composer_json_is_an_error(world):
    write(world.project / "composer.json", "{")
    with pytest.raises(ConfigError, match="composer.json is not valid JSON"):
        world.find()


@pytest.mark.parametrize("content, kind", [("[1, 2]", "list"), ('"x"', "string"), ("3", "number"),
                                           ("null", "null")])
def test_auth_json_not_an_object_is_a_warning_and_skipped(world, content, kind):
    keys = pair()
    write(world.global_auth, auth_data(keys=keys))
    write(world.project_auth, content)
    result = world.find()
    assert result.credentials == keys
    (finding,) = result.findings
    assert finding.level == WARNING and finding.path == world.project_auth
    assert f"holds a JSON {kind}, not an object" in finding.message


def test_empty_php_array_is_an_empty_object(world):
    write(world.project_auth, "[]")
    write(world.global_auth, {"http-basic": []})
    result = world.find()
    assert result.findings == () and result.credentials is None


@pytest.mark.parametrize("entry, problem", [
    ("a string", "is a string, not an object"),
    (["u", "p"], "is a list, not an object"),
    ({"username": 12345678, "password": R1}, "username that is a number"),
    ({"username": R2, "password": None}, "password that is a null"),
    ({"username": R2}, "has no password"),
    ({"password": R3}, "has no username"),
])
def test_wrong_typed_entry_is_reported_and_skipped(world, entry, problem):
    keys = pair()
    write(world.global_auth, auth_data(keys=keys))
    write(world.project_auth, {"http-basic": {HOST: entry}})
    result = world.find()
    assert result.credentials == keys and result.source is Source.GLOBAL_AUTH
    (finding,) = result.findings
    assert finding.level == WARNING and finding.source is Source.PROJECT_AUTH
    assert str(world.project_auth) in finding.message and problem in finding.message
    assert "skipped" in finding.message
    assert all(r not in finding.message for r in (R1, R2, R3))


def test_http_basic_not_an_object_is_a_warning(world):
    write(world.project_auth, {"http-basic": "repo.magento.com"})
    (finding,) = world.find().findings
    assert "'http-basic' is a string, not an object" in finding.message


def test_http_basic_under_config_in_auth_json_is_flagged(world):
    write(world.project_auth, {"config": auth_data(keys=pair())})
    result = world.find()
    assert result.credentials is None
    (finding,) = result.findings
    assert "belongs at the top level" in finding.message
