"""The benchmark (``make bench``): see ``__main__.py`` for the parts and the layout."""
