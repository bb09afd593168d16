"""The checks a plugin class passes before it is registered.

Its declarations (``Plugin.settings``, ``Plugin.param_prefixes``) must not
break other connections, and its ``credentials`` hooks must be callable as
the pipeline calls them. :meth:`~bluegreen.pipeline.PluginRegistry.register`
runs :func:`check_plugin`; the settings registry runs
:func:`check_declarations` again whenever it reads the declarations.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

from ._plugin import CREDENTIAL_HOOKS, Plugin, _is_plugin_class
from ._setting import CORE_SETTINGS, Setting
from .errors import ConfigurationError


def check_plugin(code: str, factory: object, others: Mapping[str, object]) -> None:
    """Refuse plugin class ``factory`` for ``code`` with a
    :class:`ConfigurationError` naming the plugin and the rule: its
    ``credentials`` hooks (see :func:`check_credential_hooks`) and its
    declarations (see :func:`check_declarations`), these against the core's
    and those of every plugin class in ``others`` (plugin code -> factory,
    ``None`` for one not imported yet)."""
    if not _is_plugin_class(factory):
        return
    check_credential_hooks(code, factory)
    declared_by: dict[str, tuple[tuple[Setting, ...], tuple[str, ...]]] = {}
    for other, declared in others.items():
        if other != code and _is_plugin_class(declared):
            declared_by[other] = (
                tuple(declared.settings),
                tuple(declared.param_prefixes),
            )
    check_declarations(code, factory.settings, factory.param_prefixes, declared_by)


def check_declarations(
    code: str,
    declared: object,
    prefixes: object,
    others: Mapping[str, tuple[tuple[Setting, ...], tuple[str, ...]]],
) -> None:
    """Refuse what plugin ``code`` declares (``Plugin.settings``,
    ``Plugin.param_prefixes``) if it would break other connections: a
    setting without the plugin's code and ``_``, a setting named twice or
    already declared by the core or by one of ``others`` (plugin code ->
    its settings and prefixes), a prefix that is not a non-empty string or
    that another plugin declares. Raise :class:`ConfigurationError` naming
    the plugin, the setting or prefix, and the rule."""
    if not isinstance(declared, (tuple, list)):
        raise ConfigurationError(
            f"plugin {code!r}: settings must be a tuple of bluegreen.Setting, "
            f"not {type(declared).__name__}"
        )
    owners = {s.name: "the core" for s in CORE_SETTINGS}
    for other, (settings, _) in others.items():
        if other != code:
            owners.update((s.name, f"plugin {other!r}") for s in settings)
    stem = code.replace("-", "_") + "_"
    seen: set[str] = set()
    for setting in declared:
        if not isinstance(setting, Setting):
            raise ConfigurationError(
                f"plugin {code!r}: settings must be a tuple of bluegreen.Setting, "
                f"and it holds {setting!r}"
            )
        name = setting.name
        if not name.startswith(stem) or name == stem:
            raise ConfigurationError(
                f"plugin {code!r} declares setting {name!r}: a plugin's "
                f"settings must start with {stem!r} (its code and '_')"
            )
        if name in seen:
            raise ConfigurationError(
                f"plugin {code!r} declares setting {name!r} twice: setting "
                "names must be unique"
            )
        if name in owners:
            raise ConfigurationError(
                f"plugin {code!r} declares setting {name!r}, which "
                f"{owners[name]} declares already: setting names must be unique"
            )
        seen.add(name)
    if not isinstance(prefixes, (tuple, list)):
        raise ConfigurationError(
            f"plugin {code!r}: param_prefixes must be a tuple of strings, "
            f"not {type(prefixes).__name__}"
        )
    taken = {
        prefix: other
        for other, (_, own) in others.items()
        if other != code
        for prefix in own
    }
    for prefix in prefixes:
        if not isinstance(prefix, str) or not prefix:
            raise ConfigurationError(
                f"plugin {code!r} declares the driver-argument prefix "
                f"{prefix!r}: a prefix must be a non-empty string"
            )
        if prefix in taken:
            raise ConfigurationError(
                f"plugin {code!r} declares the driver-argument prefix "
                f"{prefix!r}, which plugin {taken[prefix]!r} declares already: "
                "prefixes must be unique"
            )


def check_credential_hooks(code: str, kind: type[Plugin]) -> None:
    """Refuse plugin class ``kind`` if its ``credentials`` hooks cannot be
    called as the pipeline calls them: on the class, ``credentials`` as a
    plain function, ``credentials_async`` as a coroutine function, and never
    ``credentials_async`` alone (synchronous connections and the
    connections plugins open themselves call ``credentials``)."""
    name = f"plugin {code!r} ({kind.__qualname__})"
    overridden = []
    for hook in CREDENTIAL_HOOKS:
        raw = inspect.getattr_static(kind, hook)
        if raw is Plugin.__dict__[hook]:
            continue
        overridden.append(hook)
        if not isinstance(raw, (classmethod, staticmethod)):
            raise ConfigurationError(
                f"{name}: {hook} must be a class method (decorate it with "
                "@classmethod): bluegreen calls it on the class, also for "
                "connections that no instance of the plugin belongs to (the "
                "bg plugin's monitors)"
            )
        is_async = inspect.iscoroutinefunction(raw.__func__)
        if hook == "credentials" and is_async:
            raise ConfigurationError(
                f"{name}: credentials must not be async (the bg plugin's "
                "monitors call it from their own threads): define it with "
                "def, and put asyncio work in credentials_async"
            )
        if hook == "credentials_async" and not is_async:
            raise ConfigurationError(
                f"{name}: credentials_async must be defined with async def"
            )
    if overridden == ["credentials_async"]:
        raise ConfigurationError(
            f"{name} overrides credentials_async but not credentials: "
            "credentials serves synchronous connections and the connections "
            "plugins open themselves (the bg plugin's monitors, from their "
            "own threads, also for an asyncio application), so a plugin that "
            "supplies credentials defines it; credentials_async is optional "
            "(by default it calls credentials)"
        )
