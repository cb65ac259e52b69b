"""scanning workflows."""
