"""Architectures as plain ``nn.Module``s: importable and usable without Lightning."""
