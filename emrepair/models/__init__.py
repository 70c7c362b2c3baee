"""emrepair.models."""
