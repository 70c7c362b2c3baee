"""emrepair.simulate."""
