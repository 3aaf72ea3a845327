"""Settings of the test project (pytest-django and the subprocesses tests start)."""

import os
import tempfile

BASE_DIR = os.path.dirname(os.path.abspath(__file__))
SECRET_KEY = "cronman-tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "cronman_core",
    "cronman_plugins.tasks",
    "cronman_plugins.history",
    "cronman_plugins.dbschedule",
    "tests.testapp",
]
# The database schedule's table is empty in tests, and in-process tests have no database access:
# tests of it enable it in a project of their own.
CRONMAN_DISABLED_PLUGINS = ["dbschedule"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "/static/"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("CRONMAN_TEST_DB", os.path.join(tempfile.gettempdir(), "cronman-tests.sqlite3")),
    }
}

CRONMAN_DATA_DIR = os.environ.get("CRONMAN_TEST_DATA_DIR") or tempfile.mkdtemp(prefix="cronman-tests-")
CRONMAN_JOBS_MODULE = "tests.testapp.schedule"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"cronman": {"handlers": ["console"], "level": "INFO"}},
}
