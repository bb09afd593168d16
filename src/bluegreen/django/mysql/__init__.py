"""Django's MySQL backend (mysqlclient) through bluegreen (``ENGINE =
"bluegreen.django.mysql"``); see :mod:`bluegreen.django.mysql.base`."""
