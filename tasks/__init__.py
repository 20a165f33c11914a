"""Task definitions; importing this package registers every task."""
from tasks import bbc_news, glue, qa, rt_polarity, superglue  # noqa: F401
