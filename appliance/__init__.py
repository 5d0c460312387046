"""On-premise AI phone secretary for medical practices."""

__version__ = "0.1.0"
