"""Training methods, one module per family; `methods.registry.METHODS` finds every registered one."""
