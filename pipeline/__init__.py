"""Link-health and metadata-refresh pipeline for corpora of front-matter article files."""

__version__ = "0.1.0"
