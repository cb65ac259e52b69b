from django.apps import AppConfig


class TicketingConfig(AppConfig):
    name = "ticketing"
    verbose_name = "Ticketing"

    def ready(self) -> None:
        # Connects the audit trail to every django-fsm transition.
        from ticketing import audit  # noqa: F401
