from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "workflows"
    verbose_name = "Workflows"

    def ready(self) -> None:
        # Definitions register on import; web processes and workers must know
        # the same ones, so import every area package (workflows/<area>/).
        from workflows.engine.registry import autodiscover

        autodiscover()
