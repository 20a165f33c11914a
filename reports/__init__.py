"""MLflow runs -> pandas -> tables. Never imports torch."""
