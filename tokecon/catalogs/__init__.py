"""Catalogs: reading and validating the TOML catalogs, user entries, Hugging Face config import."""
