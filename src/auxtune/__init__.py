"""auxtune: tune the weights of self-supervised auxiliary tasks for robust image classification."""

__version__ = "0.1.0"
