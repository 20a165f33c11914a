"""Training methods; importing this package registers every method."""
from methods import ft, mezo  # noqa: F401
