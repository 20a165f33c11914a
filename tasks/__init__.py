"""Task definitions, one module per source; `tasks.registry.TASKS` finds every registered one."""
