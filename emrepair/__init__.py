"""emrepair: find and repair missing sections and support-film folds in serial-section EM volumes."""

__version__ = "0.1.0"
