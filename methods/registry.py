"""Every training method by name: `@register_method("mezo")` on a class that implements
`methods.base.Method`."""
from benchmark.core.registry import Registry

METHODS: Registry = Registry("method", "methods")
register_method = METHODS.register
