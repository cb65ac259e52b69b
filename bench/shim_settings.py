"""Settings for the stand-in checkout API (bench.shim): the project's settings
with bench.shim as the URL conf. Used only while the real public checkout API
is missing; the final figures come from config.settings."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.shim"
