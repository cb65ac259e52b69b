"""checkout workflows."""
