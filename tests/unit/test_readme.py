"""The README's settings table must match the settings registry."""

from __future__ import annotations

import re
from pathlib import Path

from bluegreen.settings import iter_settings

README = Path(__file__).resolve().parents[2] / "README.md"
_ROW = re.compile(r"^\| `(?P<name>[a-z_]+)` \| (?P<type>\w+) \| (?P<default>[^|]+) \|")


def _table() -> dict[str, tuple[str, str]]:
    rows: dict[str, tuple[str, str]] = {}
    for line in README.read_text().splitlines():
        m = _ROW.match(line)
        if m:
            rows[m["name"]] = (m["type"], m["default"].strip().strip("`"))
    return rows


def test_every_setting_is_documented_once_with_its_type() -> None:
    table = _table()
    registry = {s.name: s for s in iter_settings()}
    assert set(table) == set(registry)
    for name, (type_name, _) in table.items():
        assert type_name == registry[name].type.__name__, name


def test_documented_defaults_are_the_real_ones() -> None:
    table = _table()
    for setting in iter_settings():
        documented = table[setting.name][1]
        if setting.type is bool:
            assert documented == str(setting.default).lower(), setting.name
        elif setting.type is int:
            assert documented == str(setting.default), setting.name
        elif setting.default is None:
            expected = "(detect)" if setting.name == "wrapper_dialect" else "None"
            assert documented == expected, setting.name
        elif setting.name == "bg_client_tag":
            assert setting.default.startswith("bluegreen-")
            assert documented == "bluegreen-<version>"
        else:
            assert documented == setting.default, setting.name


BG_PLUGIN_DOC = README.parent / "docs" / "bg-plugin.md"


def _documented_default(setting_name: str, default: object) -> str:
    if isinstance(default, bool):
        return str(default).lower()
    if default is None:
        return "(detect)" if setting_name == "wrapper_dialect" else "None"
    if setting_name == "bg_client_tag":
        return "bluegreen-<version>"
    return str(default)


def test_bg_plugin_doc_parameters_match_the_registry() -> None:
    rows: dict[str, tuple[str, str]] = {}
    for line in BG_PLUGIN_DOC.read_text().splitlines():
        m = _ROW.match(line)
        if m:
            rows[m["name"]] = (m["type"], m["default"].strip().strip("`"))
    wanted = {
        s.name: s
        for s in iter_settings()
        if s.name.startswith("bg_") or s.name == "wrapper_dialect"
    }
    assert set(rows) == set(wanted)
    for name, setting in wanted.items():
        assert rows[name][0] == setting.type.__name__, name
        assert rows[name][1] == _documented_default(name, setting.default), name
