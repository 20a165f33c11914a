"""Training methods; importing this package registers every method."""
from methods import dizo, ft, hizoo, mezo, zero_shot  # noqa: F401
