"""ecgops."""
