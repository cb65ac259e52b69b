"""payments workflows."""
