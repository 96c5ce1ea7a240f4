"""The HTTP edge: aiohttp handlers that turn requests into core calls and back."""
