"""Finance workflows: settlement and reserve-release timers, payouts."""
