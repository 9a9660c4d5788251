"""`bench list`: what is registered (methods, backbones, datasets, executors)."""

import typer


def list_registries() -> None:
    """List the registered methods, backbones, datasets and executors."""
    import bench.config.schema  # noqa: F401  registers the methods
    from bench.data.datasets import DATASETS  # registers the datasets
    from bench.launch.executors import EXECUTORS
    from core.method import METHODS
    from core.vit import BACKBONES

    for registry in (METHODS, BACKBONES, DATASETS, EXECUTORS):
        typer.echo(f"{registry.kind}s: {', '.join(registry.names())}")
