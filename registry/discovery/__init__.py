"""appc image discovery both ways: meta tags and templates for the server, app strings, parsing and the walk-up for the client."""
