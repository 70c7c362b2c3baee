"""emrepair.engine."""
