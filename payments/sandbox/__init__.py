"""The sandbox payment service: a pretend provider that needs no network.

`gateway` is what a real provider does on its own servers (hosted pay page
logic, charges, refunds, payouts); `webhooks` records, signs and delivers its
webhooks to our endpoint. Our side talks to it only through
payments.providers.sandbox.SandboxProvider and the signed webhooks, exactly as
it talks to Stripe.
"""
