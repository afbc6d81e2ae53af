"""Small generic helpers shared by features."""
