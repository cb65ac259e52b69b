from django.urls import path

from payments.views import provider_webhook, sandbox_pay

app_name = "payments"

urlpatterns = [
    path("webhooks/payments/<slug:provider>/", provider_webhook, name="webhook"),
    path("pay/sandbox/<str:token>/", sandbox_pay, name="sandbox-pay"),
]
