"""emrepair.cli."""
