"""charter's data engine: constitution -> responses -> critiques/revisions -> preference pairs."""

__version__ = "0.1.0"


def package_versions(*names: str) -> dict[str, str | None]:
    """Installed versions of the packages that decide what a run or a training produces (None: absent)."""
    import platform
    from importlib import metadata

    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions
