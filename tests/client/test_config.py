import json
import stat

from codesuggest.client import config, settings


def test_save_writes_0600_json_that_load_reads(tmp_path, monkeypatch):
    monkeypatch.setenv(config.CONFIG_DIR_ENV, str(tmp_path / "cfg"))
    path = config.save("http://instance.example/", "glpat-secret")
    assert path == tmp_path / "cfg" / "client.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {
        "instance_url": "http://instance.example",
        "token": "glpat-secret",
    }
    stored = config.load()
    assert stored == config.StoredConfig("http://instance.example", "glpat-secret")


def test_save_to_explicit_path_and_overwrite(tmp_path):
    target = tmp_path / "x" / "client.json"
    config.save("http://a", "one", path=target)
    config.save("http://b", "two", path=target)
    assert config.load(target) == config.StoredConfig("http://b", "two")
    assert [p.name for p in target.parent.iterdir()] == ["client.json"]


def test_load_missing_or_broken_is_none(tmp_path):
    assert config.load(tmp_path / "nope.json") is None
    broken = tmp_path / "client.json"
    broken.write_text("{not json")
    assert config.load(broken) is None


def test_resolution_order_flag_then_named_env_then_env_then_file(tmp_path, monkeypatch):
    monkeypatch.setenv(config.CONFIG_DIR_ENV, str(tmp_path))
    config.save("http://stored", "stored-pat")
    env = {"MY_PAT": "named-env-pat", settings.TOKEN_ENV: "generic-env-pat"}
    assert settings.resolve("http://flag", "flag-pat", "MY_PAT", env) == (
        "http://flag",
        "flag-pat",
    )
    assert settings.resolve(None, None, "MY_PAT", env) == ("http://stored", "named-env-pat")
    assert settings.resolve(None, None, None, env) == ("http://stored", "generic-env-pat")
    assert settings.resolve(None, None, None, {}) == ("http://stored", "stored-pat")
    # the stored PAT belongs to the stored instance only
    assert settings.resolve("http://elsewhere", None, None, {}) == ("http://elsewhere", None)


def test_editor_settings_nested_or_flat(tmp_path, monkeypatch):
    monkeypatch.setenv(config.CONFIG_DIR_ENV, str(tmp_path))
    nested = settings.from_editor(
        {"codesuggest": {"instanceUrl": "http://i/", "token": "t", "debounceMs": 0}}, {}
    )
    assert (nested.instance_url, nested.token, nested.debounce) == ("http://i", "t", 0.0)
    flat = settings.from_editor({"instanceUrl": "http://i", "tokenEnv": "PAT"}, {"PAT": "p"})
    assert (flat.token, flat.debounce, flat.complete) == ("p", settings.DEFAULT_DEBOUNCE, True)
    assert not settings.from_editor({}, {}).complete
