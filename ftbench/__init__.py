"""ftbench: a terminal benchmark for fine-tuning methods of transformer models."""

__version__ = "0.1.0"
