from django.apps import AppConfig


class TicketingConfig(AppConfig):
    name = "ticketing"
    verbose_name = "Ticketing"

    def ready(self) -> None:
        # The audit trail of every django-fsm transition, and the outbound
        # webhook events of the order lifecycle (both connect signal receivers).
        from ticketing import audit, integrations  # noqa: F401
