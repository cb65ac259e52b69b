"""Seating's writes: holds (seating.services.holds), best available
(seating.services.best_available) and plans (seating.services.plans)."""
