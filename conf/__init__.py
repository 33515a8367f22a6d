"""litnets' Hydra configs. Installed as the package ``litnets.conf`` (see pyproject.toml), so
a wheel carries them and ``importlib.resources`` finds them in any install."""
