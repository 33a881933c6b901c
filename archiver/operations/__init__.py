"""What the commands do besides sync (status, purge, scrub, export, ...), without click."""
