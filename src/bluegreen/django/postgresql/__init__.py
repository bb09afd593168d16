"""Django's PostgreSQL backend through bluegreen (``ENGINE =
"bluegreen.django.postgresql"``); see :mod:`bluegreen.django.postgresql.base`."""
