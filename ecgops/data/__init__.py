"""Raw records to validated heartbeat tables."""
