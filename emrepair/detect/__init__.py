"""emrepair.detect."""
