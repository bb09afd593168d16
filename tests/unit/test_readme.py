"""The README's settings table must match the settings registry."""

from __future__ import annotations

import re
from pathlib import Path

from bluegreen.settings import iter_settings, settings_table_markdown

README = Path(__file__).resolve().parents[2] / "README.md"
_ROW = re.compile(r"^\| `(?P<name>[a-z_]+)` \| (?P<type>\w+) \| (?P<default>[^|]+) \|")


def _table() -> dict[str, tuple[str, str]]:
    rows: dict[str, tuple[str, str]] = {}
    for line in README.read_text().splitlines():
        m = _ROW.match(line)
        if m:
            rows[m["name"]] = (m["type"], m["default"].strip().strip("`"))
    return rows


def test_readme_settings_table_is_the_generated_one() -> None:
    """The README's table is exactly what the registry renders (every
    setting of the core and of each built-in plugin, once, with its type,
    default and allowed values): run scripts/settings-table after changing
    a setting."""
    text = README.read_text()
    begin = re.search(r"<!-- settings-table:[^\n]*-->\n", text)
    assert begin is not None, "settings-table markers missing from README.md"
    end = text.index("<!-- end settings-table -->")
    assert text[begin.end() : end] == settings_table_markdown()


def test_every_setting_is_in_the_table_once_with_its_type() -> None:
    table = _table()
    registry = {s.name: s for s in iter_settings()}
    assert set(table) == set(registry)
    assert {"plugins", "bg_id", "iam_region"} <= set(table)
    for name, (type_name, _) in table.items():
        assert type_name == registry[name].type.__name__, name


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
