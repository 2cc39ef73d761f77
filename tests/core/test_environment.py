"""The environment variables: declared once (dreamedit3d_core/environment.py), read through `setting(name)`."""

from __future__ import annotations

import re

import pytest

from dreamedit3d_core.environment import ENVIRONMENT, EnvironmentSettingError, is_set, setting
from tests.helpers import PROJECT_ROOT


def test_an_unset_or_empty_variable_is_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DREAMEDIT3D_LOCK_LEASE_S", raising=False)
    assert setting("DREAMEDIT3D_LOCK_LEASE_S") == 60.0 and not is_set("DREAMEDIT3D_LOCK_LEASE_S")
    monkeypatch.setenv("DREAMEDIT3D_LOCK_LEASE_S", "")
    assert setting("DREAMEDIT3D_LOCK_LEASE_S") == 60.0
    monkeypatch.delenv("DREAMEDIT3D_MVDREAM", raising=False)
    assert setting("DREAMEDIT3D_MVDREAM") is None


def test_a_set_variable_is_read_as_its_type(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DREAMEDIT3D_LOCK_LEASE_S", " 6 ")
    monkeypatch.setenv("DREAMEDIT3D_REMOTE_ATTEMPTS", "1")
    monkeypatch.setenv("DREAMEDIT3D_ALLOW_HTTP_SOURCES", "Yes")
    monkeypatch.setenv("DREAMEDIT3D_CACHE", "/tmp/a cache")
    assert setting("DREAMEDIT3D_LOCK_LEASE_S") == 6.0 and setting("DREAMEDIT3D_REMOTE_ATTEMPTS") == 1
    assert setting("DREAMEDIT3D_ALLOW_HTTP_SOURCES") is True and setting("DREAMEDIT3D_CACHE") == "/tmp/a cache"
    monkeypatch.setenv("DREAMEDIT3D_ALLOW_HTTP_SOURCES", "0")
    assert setting("DREAMEDIT3D_ALLOW_HTTP_SOURCES") is False


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("DREAMEDIT3D_LOCK_LEASE_S", "a minute", "DREAMEDIT3D_LOCK_LEASE_S='a minute': expected a number"),
        ("DREAMEDIT3D_LOCK_LEASE_S", "1", "DREAMEDIT3D_LOCK_LEASE_S='1': must be at least 2"),
        ("DREAMEDIT3D_REMOTE_ATTEMPTS", "2.5", "DREAMEDIT3D_REMOTE_ATTEMPTS='2.5': expected a whole number"),
        ("DREAMEDIT3D_ALLOW_HTTP_SOURCES", "maybe", "DREAMEDIT3D_ALLOW_HTTP_SOURCES='maybe': expected one of 1, true"),
    ],
)
def test_a_malformed_value_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(EnvironmentSettingError, match=re.escape(expected)):
        setting(name)
    assert issubclass(EnvironmentSettingError, ValueError)  # bad input: a ValueError, as everywhere


def test_an_unknown_name_is_refused() -> None:
    with pytest.raises(KeyError, match="DREAMEDIT3D_LOCK_LEASE is not a declared environment variable"):
        setting("DREAMEDIT3D_LOCK_LEASE")
    with pytest.raises(KeyError):
        is_set("HOME")


def test_every_variable_the_code_names_is_declared_once_and_execution_only() -> None:
    names = [declared.name for declared in ENVIRONMENT]
    assert len(names) == len(set(names)) and all(name.startswith("DREAMEDIT3D_") for name in names)
    assert all(declared.execution_only and declared.description for declared in ENVIRONMENT)
    for declared in ENVIRONMENT:  # a default of the declared type, or None: nothing
        assert declared.default is None or type(declared.default) is declared.type, declared.name
    named = set()
    for package in ("dreamedit3d_core", "storage", "tasks", "flows"):
        for source in (PROJECT_ROOT / package).rglob("*.py"):
            named |= set(re.findall(r"[\"'](DREAMEDIT3D_[A-Z0-9_]+)[\"']", source.read_text()))
    assert named and named <= set(names), sorted(named - set(names))  # none read without a declaration
