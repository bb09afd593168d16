"""Settings of the test project, from the environment (see ``run.py``).

``BG_DJANGO_ENGINE``, ``BG_DJANGO_HOST``, ``BG_DJANGO_PORT``,
``BG_DJANGO_NAME``, ``BG_DJANGO_USER``, ``BG_DJANGO_PASSWORD``: the
database; ``BG_DJANGO_OPTIONS``: ``OPTIONS`` as JSON (driver arguments and
bluegreen settings); ``BG_DJANGO_CONN_MAX_AGE`` (seconds, or ``none``) and
``BG_DJANGO_HEALTH_CHECKS`` (``1``/``0``). ``BG_DJANGO_EXTRA_ALIASES`` as
JSON, ``{alias: {setting: value}}``: more aliases on the same database,
each a copy of ``default`` with those settings replaced (``OPTIONS`` is
merged into the default's).
"""

from __future__ import annotations

import json
import os
from typing import Any

SECRET_KEY = "bluegreen-django-tests"
INSTALLED_APPS = ["app"]
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

_env = os.environ
_max_age = _env.get("BG_DJANGO_CONN_MAX_AGE", "0")

_default: dict[str, Any] = {
    "ENGINE": _env["BG_DJANGO_ENGINE"],
    "HOST": _env["BG_DJANGO_HOST"],
    "PORT": _env["BG_DJANGO_PORT"],
    "NAME": _env["BG_DJANGO_NAME"],
    "USER": _env["BG_DJANGO_USER"],
    "PASSWORD": _env["BG_DJANGO_PASSWORD"],
    "OPTIONS": json.loads(_env.get("BG_DJANGO_OPTIONS", "{}")),
    "CONN_MAX_AGE": None if _max_age == "none" else int(_max_age),
    "CONN_HEALTH_CHECKS": _env.get("BG_DJANGO_HEALTH_CHECKS", "0") == "1",
}


def _alias(changes: dict[str, Any]) -> dict[str, Any]:
    db = {**_default, **changes}
    db["OPTIONS"] = {**_default["OPTIONS"], **changes.get("OPTIONS", {})}
    return db


DATABASES = {"default": _default} | {
    alias: _alias(changes)
    for alias, changes in json.loads(_env.get("BG_DJANGO_EXTRA_ALIASES", "{}")).items()
}
