"""The generated parts of the documentation site, read from the project's own files.

Nothing here imports the ``embedding_distillation`` package (that would import torch and take
longer than the whole build): the YAML files of ``conf/`` are read as YAML, the Python sources of
``src/`` through griffe's static analysis and :mod:`ast`, and ``benchmarks/*.md`` as text.
``docs/hooks.py`` calls these modules from mkdocs' events; ``tests/test_docs.py`` calls them
directly.
"""
