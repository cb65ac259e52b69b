"""seating workflows."""
