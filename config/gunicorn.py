"""gunicorn's settings for the web processes: `gunicorn -c config/gunicorn.py
config.wsgi` (the command line adds workers, bind, ...).

The application is loaded once, in the master, and the workers are forked
from it already warm (config.warmup): no worker's first buyer pays for
importing the views. Each worker connects to the database and the cache as
it starts, after the fork."""

preload_app = True


def post_fork(server, worker):
    from config.warmup import warm_up_connections

    warm_up_connections()
