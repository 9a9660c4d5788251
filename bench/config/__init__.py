"""Configuration: the typed run config (`schema`), the bounded YAML reader (`yamlio`)."""
