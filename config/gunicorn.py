"""gunicorn's settings for the web processes: `gunicorn -c config/gunicorn.py
config.wsgi` (the command line adds workers, bind, ...).

The application is loaded once, in the master, and the workers are forked
from it already warm (config.warmup): no worker's first buyer pays for
importing the views. Each worker connects to the database and the cache as
it starts, after the fork.

Python's cyclic garbage collector: the loaded application is ~110,000
objects that live as long as the process, and with the default thresholds
(700, 10, 10) a worker ran ~200 young and ~20 middle collections in a
2,000-ticket rush, and a full one that walked every object (45-90 ms), about
0.5 ms of CPU per order in all. The master freezes what it loaded before
each fork (the collector never walks it again, and the pages stay shared
with the master), and the workers collect the young generation every 50,000
allocations instead of 700: a request's objects are freed by reference
counting long before that, so a collection finds only what survived."""

import gc

preload_app = True

YOUNG_COLLECTION_THRESHOLD = 50_000


def pre_fork(server, worker):
    gc.freeze()


def post_fork(server, worker):
    from config.warmup import warm_up_connections

    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, 20, 100)
    warm_up_connections()
