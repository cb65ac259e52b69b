"""ticketing workflows."""
