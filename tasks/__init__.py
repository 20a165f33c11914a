"""Task definitions; importing this package registers every task."""
from tasks import rt_polarity, sst2  # noqa: F401
