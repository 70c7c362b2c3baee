"""Format writers behind ``emrepair.io.create_output``."""
