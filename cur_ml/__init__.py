"""cur-ml: routing of citizens' appeals in Russian (topic, urgency, agency)."""

__version__ = "0.1.0"
__all__ = ["__version__"]
