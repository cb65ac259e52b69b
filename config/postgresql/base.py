"""Django's PostgreSQL backend with a health check that costs no round trip.

With CONN_HEALTH_CHECKS Django checks a persistent connection before a
request's first statement with a `SELECT 1`: one round trip and one
statement for the database per request, three per order in a rush. A
connection that is idle between requests has nothing to read unless the
server closed it (a restart, pg_terminate_backend, an idle timeout: the
server sends its FATAL message and closes the socket, or the kernel reports
the close), so a socket with nothing to read needs no `SELECT 1`. A readable
socket, a connection left in a transaction or any doubt goes to Django's own
check, which reconnects when it fails. After an error Django still checks
with its `SELECT 1` (close_if_unusable_or_obsolete), as before.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    def close_if_health_check_failed(self) -> None:
        checking = self.connection is not None and self.health_check_enabled and not self.health_check_done
        if checking and self._idle_and_quiet():
            self.health_check_done = True
            return
        super().close_if_health_check_failed()

    def _idle_and_quiet(self) -> bool:
        """True if the connection is open, idle outside a transaction and the
        server sent nothing since its last answer."""
        connection = self.connection
        if connection is None or connection.closed or not hasattr(select, "poll"):
            return False
        if connection.pgconn.status != pq.ConnStatus.OK:
            return False
        if connection.info.transaction_status != pq.TransactionStatus.IDLE:
            return False
        poller = select.poll()
        try:
            poller.register(connection.fileno(), select.POLLIN | select.POLLPRI)
            return not poller.poll(0)
        except (OSError, ValueError):
            return False
