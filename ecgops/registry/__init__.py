"""MLflow registry: self-contained pyfunc models, registration, promotion gate."""
