"""Configuration: the typed run config and its method sections (`schema`), building it from YAML and
dotted overrides (`parse`), every number's range (`ranges`), the checks that need the registries and
the dataset plus `build_config` (`validate`), a run folder's config.yaml and hashes (`runfile`), the
bounded YAML reader (`yamlio`)."""
